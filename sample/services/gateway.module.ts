import { Controller, Get, HttpException, Inject, Injectable, Module, Query } from '@nestjs/common';
import { ClientsModule, type ClientProxy } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/index.js';
import { SAMPLE_CUSTOMERS, sampleClientOptions } from '../sample-options.js';

@Injectable()
export class Counters {
  served = 0;
  inFlight = 0;
  /** Orders sent, for the next default customer. */
  orders = 0;
}

/** The HTTP edge: one client routes every pattern to whichever service handles it. */
@Controller()
export class GatewayController {
  constructor(
    private readonly counters: Counters,
    @Inject('CLUSTER') private readonly cluster: ClientProxy,
  ) {}

  @Get('sum')
  sum(@Query('n') n = '3'): Promise<unknown> {
    const numbers = Array.from({ length: Number(n) }, (_, i) => i + 1);
    return this.call({ cmd: 'sum' }, numbers);
  }

  /** An order of a customer (`?customer=c-3`; by default the next of 15): its orders replica is the customer's. */
  @Get('order')
  order(@Query('customer') customer?: string): Promise<unknown> {
    const who = customer ?? `c-${this.counters.orders++ % SAMPLE_CUSTOMERS}`;
    return this.call({ cmd: 'order' }, { customer: who, lines: [5, 10, 20] });
  }

  @Get('rebuild')
  rebuild(@Query('ms') ms = '2000'): Promise<unknown> {
    return this.call('rebuild', Number(ms));
  }

  private async call(pattern: unknown, data: unknown): Promise<unknown> {
    this.counters.inFlight++;
    try {
      const result = await firstValueFrom(this.cluster.send(pattern, data));
      this.counters.served++;
      return { result };
    } catch (error) {
      const { code, message } = error as { code?: string; message?: string };
      throw new HttpException({ code: code ?? 'HANDLER_ERROR', message: message ?? String(error) }, 502);
    } finally {
      this.counters.inFlight--;
    }
  }
}

@Module({
  imports: [
    ClientsModule.register([
      {
        name: 'CLUSTER',
        customClass: KableClientProxy,
        options: {
          ...sampleClientOptions(),
          id: 'gateway',
          // Key affinity: every order of one customer goes to the same orders replica (docs/affinity.md).
          affinity: { '{"cmd":"order"}': (order: { customer: string }) => order.customer },
        },
      },
    ]),
  ],
  controllers: [GatewayController],
  providers: [Counters],
})
export class GatewayModule {}
