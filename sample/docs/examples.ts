// The code blocks of docs/*.md, whole: `npm run typecheck` compiles them against the library, and
// test/docs.test.ts checks that every ```ts block of a guide is a region of this file, word for word.
// Nothing here runs: the functions are only compiled.
import {
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  ServiceUnavailableException,
  UseGuards,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, Ctx, MessagePattern, Payload, type ClientProxy } from '@nestjs/microservices';
import {
  KableClientProxy,
  KableContext,
  KableDoing,
  KableHealthIndicator,
  KableModule,
  KableNode,
  KableRecord,
  KableServer,
  KableServingGuard,
  KABLE_AFFINITY_METADATA,
  kable,
  sentinel,
  type KableHealthDetails,
} from 'nestjs-kable';
import { catchError, firstValueFrom, of, throwError, type Observable } from 'rxjs';

// #region start-math
@Controller()
export class MathController {
  @MessagePattern({ cmd: 'sum' })
  sum(@Payload() numbers: number[]): number {
    return numbers.reduce((total, n) => total + n, 0);
  }
}

@Module({ controllers: [MathController] })
export class MathModule {}

export async function bootstrapMath(): Promise<void> {
  const app = await NestFactory.createMicroservice(MathModule, {
    strategy: new KableServer({ id: 'math', replica: true }),
  });
  app.enableShutdownHooks(); // SIGTERM drains requests in flight, then leaves the cluster
  await app.listen();
}
// #endregion start-math

// #region start-gateway
@Controller()
export class TotalController {
  constructor(@Inject('MATH') private readonly math: ClientProxy) {}

  @Get('total')
  total(): Promise<number> {
    return firstValueFrom(this.math.send<number>({ cmd: 'sum' }, [1, 2, 3]));
  }
}

@Module({
  imports: [
    ClientsModule.register([{ name: 'MATH', customClass: KableClientProxy, options: { target: 'math' } }]),
  ],
  controllers: [TotalController],
})
export class GatewayModule {}

export async function bootstrapGateway(): Promise<void> {
  const app = await NestFactory.create(GatewayModule);
  app.enableShutdownHooks();
  await app.listen(3000);
}
// #endregion start-gateway

export async function waitForMath(math: KableClientProxy): Promise<void> {
  // #region start-when-served
  await math.whenServed({ cmd: 'sum' }, { count: 2, timeout: 10_000 }); // two RUNNING replicas
  // #endregion start-when-served
}

export async function nodeCore(): Promise<void> {
  // #region concepts-node
  const node = kable('reports', { replica: true, discovery: { mode: 'multicast', interface: '127.0.0.1' } });
  node.on('peer:state', (peer, previous) => console.log(`${peer.id} ${previous} -> ${peer.state}`));
  await node.up(); // joins the cluster and goes RUNNING
  const math = await node.pick('math', { timeout: 5_000 }); // the next RUNNING math replica
  console.log(`math replica ${math.iid} at ${math.host}:${math.port}`);
  await node.down(); // announces DOWN and leaves
  // #endregion concepts-node
}

// #region concepts-doing
@Controller()
export class CacheController {
  @MessagePattern('rebuild')
  @KableDoing('rebuilding the cache') // DOING_SOMETHING, skipped by every caller, until it returns
  async rebuild(@Ctx() context: KableContext): Promise<string> {
    const caller = context.getCaller(); // the calling node's id and instance id
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    return `rebuilt for ${caller?.id ?? 'an older client'}`;
  }
}
// #endregion concepts-doing

export function busyServer(): KableServer {
  // #region concepts-busy
  const server = new KableServer({ id: 'math', replica: true, busy: { maxEventLoopDelayMs: 200 } });
  // #endregion concepts-busy
  return server;
}

export function deployments(): KableServer[] {
  // #region deploy-unicast
  const server = new KableServer({
    id: 'math',
    replica: true,
    host: process.env.POD_IP, // the pod's own address (downward API), which other pods can reach
    port: 7000,
    key: process.env.KABLE_KEY, // from a Secret
    discovery: { mode: 'unicast', port: 5000, peers: ['kable-discovery:5000'] },
  });
  // #endregion deploy-unicast
  // #region deploy-redis
  const withRedis = new KableServer({
    id: 'math',
    replica: true,
    key: process.env.KABLE_KEY,
    discovery: { mode: 'redis', url: 'redis://redis.internal:6379' },
  });
  // #endregion deploy-redis
  return [server, withRedis];
}

// #region operations-health
@Controller()
export class HealthController {
  constructor(
    private readonly kableHealth: KableHealthIndicator,
    @Inject('MATH') private readonly math: KableClientProxy,
  ) {}

  @Get('health')
  health(): Record<string, KableHealthDetails> {
    const result = this.kableHealth.check('kable', { client: this.math, patterns: [{ cmd: 'sum' }] });
    if (result.kable.status === 'down') throw new ServiceUnavailableException(result);
    return result;
  }
}
// #endregion operations-health

// #region operations-guard
@Controller('reports')
@UseGuards(KableServingGuard) // 503 while this process's node is not RUNNING (busy, stopping)
export class ReportsController {
  @Get()
  list(): string[] {
    return ['daily', 'weekly'];
  }
}

@Module({
  imports: [KableModule.forRoot({ id: 'reports', replica: true })],
  controllers: [ReportsController],
})
export class ReportsModule {}
// #endregion operations-guard

@Injectable()
export class StatsReporter {
  constructor(private readonly node: KableNode) {}

  report(): void {
    // #region operations-stats
    const stats = this.node.stats(); // flat counters: dropped datagrams by kind, probes, data plane...
    console.log(this.node.state, this.node.peers().length, stats['client.pending'], stats.joinRetries);
    // #endregion operations-stats
  }
}

export function secured(): KableServer[] {
  // #region security-keys
  const rotating = new KableServer({
    id: 'math',
    replica: true,
    keys: [process.env.KABLE_KEY_NEW!, process.env.KABLE_KEY_OLD!], // seal with the first, accept both
  });
  // #endregion security-keys
  // #region security-tls
  const mutualTls = new KableServer({
    id: 'math',
    replica: true,
    tls: { key: process.env.TLS_KEY!, cert: process.env.TLS_CERT!, ca: process.env.TLS_CA! },
  });
  // #endregion security-tls
  return [rotating, mutualTls];
}

// #region reliability-codes
export function totalOrZero(math: ClientProxy, numbers: number[]): Observable<number> {
  return math.send<number>({ cmd: 'sum' }, numbers).pipe(
    catchError((error: { code?: string }) =>
      // KABLE_NO_NODE: no math replica was RUNNING within pickTimeout; the request never left.
      error.code === 'KABLE_NO_NODE' ? of(0) : throwError(() => error),
    ),
  );
}
// #endregion reliability-codes

// #region limits-copy
@Controller()
export class ThumbnailController {
  private readonly headers: Buffer[] = [];

  @MessagePattern('thumbnail')
  thumbnail(@Payload() image: Buffer): number {
    // `image` views the received frame: copy the piece kept, or the whole frame stays in memory.
    this.headers.push(Buffer.from(image.subarray(0, 64)));
    return image.length;
  }
}
// #endregion limits-copy

export function configuration(): KableServer {
  // #region config-server
  const server = new KableServer({
    id: 'math',
    replica: true,
    key: process.env.KABLE_KEY,
    discovery: { mode: 'multicast', address: '239.255.42.99', interface: '192.0.2.5' },
    drainTimeout: 20_000,
  });
  // #endregion config-server
  return server;
}

// #region config-client
export const mathClient = ClientsModule.register([
  {
    name: 'MATH',
    customClass: KableClientProxy,
    options: { target: 'math', pickTimeout: 2_000, timeout: 5_000, retries: 1, liveness: false },
  },
]);
// #endregion config-client

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
// #region affinity-option
export const ordersClient = ClientsModule.register([
  {
    name: 'ORDERS',
    customClass: KableClientProxy,
    options: {
      target: 'orders',
      // Every 'orders.get' for one customer goes to the same orders replica, on every gateway.
      affinity: { 'orders.get': (query: { customerId: string }) => query.customerId },
    },
  },
]);
// #endregion affinity-option

export function affinityPerCall(orders: ClientProxy): Observable<unknown> {
  // #region affinity-record
  // The handler receives { orderId: 42 }; the key chooses the replica.
  return orders.send('orders.get', new KableRecord({ orderId: 42 }, { affinityKey: 'customer-7' }));
  // #endregion affinity-record
}

export function affinityFromHook(orders: KableClientProxy): void {
  // #region affinity-hook
  // Nest 12: a dispatch hook may set the key in the packet metadata (here from a tenant id in the data).
  orders.setOnDispatchHook((packet) => {
    const tenant = (packet.data as { tenantId?: string }).tenantId;
    if (tenant !== undefined) packet.metadata = { ...packet.metadata, [KABLE_AFFINITY_METADATA]: tenant };
  });
  // #endregion affinity-hook
}
