import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import {
  ClientsModule,
  MessagePattern,
  Payload,
  RpcException,
  type ClientProxy,
} from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/index.js';
import { sampleClientOptions } from '../sample-options.js';

@Injectable()
export class Counters {
  served = 0;
  inFlight = 0;
  /** Orders served per customer: the gateway keys orders by customer, so each customer has one replica. */
  byCustomer: Record<string, number> = {};
}

@Controller()
export class OrdersController {
  constructor(
    private readonly counters: Counters,
    @Inject('MATH') private readonly math: ClientProxy,
  ) {}

  /** An order totals its lines by calling the math service itself: services call services. */
  @MessagePattern({ cmd: 'order' })
  async order(
    @Payload() { customer, lines }: { customer: string; lines: number[] },
  ): Promise<{ lines: number; total: number }> {
    this.counters.inFlight++;
    try {
      const total = await firstValueFrom(this.math.send<number>({ cmd: 'sum' }, lines));
      this.counters.served++;
      this.counters.byCustomer[customer] = (this.counters.byCustomer[customer] ?? 0) + 1;
      return { lines: lines.length, total };
    } catch (error) {
      // Pass Kable's error code on to our own caller instead of a bare "Internal server error".
      const { code, message } = error as { code?: string; message?: string };
      throw new RpcException({ code: code ?? 'MATH_FAILED', message: message ?? String(error) });
    } finally {
      this.counters.inFlight--;
    }
  }
}

@Module({
  imports: [
    ClientsModule.register([
      {
        name: 'MATH',
        customClass: KableClientProxy,
        options: { ...sampleClientOptions(), id: 'orders-client', target: 'math' },
      },
    ]),
  ],
  controllers: [OrdersController],
  providers: [Counters],
})
export class OrdersModule {}
