// The README's code examples, whole: `npm run typecheck` compiles them against the library, and
// test/readme.test.ts checks that every ```ts block of the README is a region of this file, word for word.
// Nothing here runs: the functions are only compiled. The guides' examples are in sample/docs/examples.ts.
import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, MessagePattern, type ClientProxy } from '@nestjs/microservices';
import { KableClientProxy, KableServer } from 'nestjs-kable';
import type { Observable } from 'rxjs';

// #region quick-service
@Controller()
export class MathController {
  @MessagePattern({ cmd: 'sum' })
  sum(numbers: number[]): number {
    return numbers.reduce((a, b) => a + b, 0);
  }
}

@Module({ controllers: [MathController] })
export class MathModule {}

export async function serveMath(): Promise<void> {
  const app = await NestFactory.createMicroservice(MathModule, {
    strategy: new KableServer({ id: 'math', replica: true }), // start as many replicas as you like
  });
  app.enableShutdownHooks(); // on SIGTERM: finish the requests in flight, then leave the cluster
  await app.listen();
}
// #endregion quick-service

// #region quick-client
@Injectable()
export class Calculator {
  constructor(@Inject('MATH') private readonly math: ClientProxy) {}

  total(numbers: number[]): Observable<number> {
    return this.math.send<number>({ cmd: 'sum' }, numbers); // a RUNNING math replica, in turn
  }
}

@Module({
  imports: [
    ClientsModule.register([{ name: 'MATH', customClass: KableClientProxy, options: { target: 'math' } }]),
  ],
  providers: [Calculator],
})
export class GatewayModule {}
// #endregion quick-client
