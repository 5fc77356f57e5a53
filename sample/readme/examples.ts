// The README's code examples, whole: `npm run typecheck` compiles them against the library, and
// test/readme.test.ts checks that every ```ts block of the README is a region of this file, word for word.
import { Controller, Get, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, MessagePattern, type ClientProxy } from '@nestjs/microservices';
import { KableClientProxy, KableModule, KableNode, KableServer, sentinel } from 'nestjs-kable';
import type { Observable } from 'rxjs';

@Controller()
class MathController {
  @MessagePattern({ cmd: 'sum' })
  sum(numbers: number[]): number {
    return numbers.reduce((a, b) => a + b, 0);
  }
}

@Module({ controllers: [MathController] })
class MathModule {}

export async function service(): Promise<void> {
  // #region service
  const app = await NestFactory.createMicroservice(MathModule, {
    strategy: new KableServer({ id: 'math', replica: true }),
  });
  app.enableShutdownHooks(); // graceful drain on SIGTERM (see below)
  await app.listen();
  // #endregion service
}

// #region client
@Injectable()
export class Calculator {
  constructor(@Inject('MATH') private readonly math: ClientProxy) {}

  total(numbers: number[]): Observable<number> {
    return this.math.send<number>({ cmd: 'sum' }, numbers); // served by a RUNNING replica
  }

  orderCreated(order: { id: number }): Observable<void> {
    return this.math.emit('order_created', order); // once to one replica of every service that handles it
  }
}

@Module({
  imports: [
    ClientsModule.register([{ name: 'MATH', customClass: KableClientProxy, options: { target: 'math' } }]),
  ],
  providers: [Calculator],
})
export class GatewayModule {}
// #endregion client

// #region hybrid
@Controller()
class OrdersController {
  constructor(@Inject('MATH') private readonly math: ClientProxy) {}

  @Get('total')
  total(): Observable<number> {
    return this.math.send<number>({ cmd: 'sum' }, [1, 2, 3]);
  }
}

@Module({
  imports: [
    KableModule.forRoot({ id: 'orders', replica: true }),
    ClientsModule.registerAsync([
      {
        name: 'MATH',
        inject: [KableNode],
        useFactory: (node: KableNode) => ({
          customClass: KableClientProxy,
          options: { node, target: 'math' },
        }),
      },
    ]),
  ],
  controllers: [OrdersController],
})
export class OrdersModule {}

export async function hybrid(): Promise<void> {
  const app = await NestFactory.create(OrdersModule);
  app.connectMicroservice({ strategy: new KableServer({ node: app.get(KableNode) }) });
  await app.startAllMicroservices();
  await app.listen(3000);
}
// #endregion hybrid

export async function sentinels(pool: { query(sql: string): Promise<unknown> }): Promise<void> {
  // #region sentinel
  const db = sentinel('postgres', { probe: () => pool.query('select 1').then(() => true), interval: 1000 });
  await db.start(); // RUNNING while the probe answers, STOPPED while it does not
  // #endregion sentinel
}

// #region telemetry
// telemetry.ts: run it before the Nest app (or any Kable client) is created.
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  ConsoleMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, ConsoleSpanExporter, TracerProvider } from '@opentelemetry/sdk-trace';

export function startTelemetry(): void {
  // Handler spans find their parent through the active context: AsyncLocalStorage carries it.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  // traceparent, tracestate and baggage: what Kable puts in each request's metadata.
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  trace.setGlobalTracerProvider(
    new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter: new ConsoleSpanExporter() })] }),
  );
  metrics.setGlobalMeterProvider(
    new MeterProvider({
      readers: [
        new PeriodicExportingMetricReader({
          exporter: new ConsoleMetricExporter(),
          exportIntervalMillis: 10_000,
        }),
      ],
    }),
  );
}
// #endregion telemetry
