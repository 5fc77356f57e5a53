// One process of the sample cluster: node --import ./scripts/register-ts.js sample/service.ts <math|orders|gateway>
// Prints JSON lines for the console: {"ready":...} once serving, then {"stats":...} every 200 ms.
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication, INestMicroservice } from '@nestjs/common';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { KableServer } from '../lib/index.js';
import { sampleNodeOptions } from './sample-options.js';
import { GatewayModule, Counters as GatewayCounters } from './services/gateway.module.js';
import { MathModule, Counters as MathCounters } from './services/math.module.js';
import { OrdersModule, Counters as OrdersCounters } from './services/orders.module.js';

const role = process.argv[2];
const line = (value: unknown) => process.stdout.write(JSON.stringify(value) + '\n');
// `npm start -- --trace`: an OpenTelemetry SDK printing spans, registered before any Kable client or server.
const tracing = process.env.KABLE_SAMPLE_TRACE === '1' ? await import('./tracing.js') : undefined;
tracing?.startSampleTracing(line);
// Quiet enough that the console's table stays readable: warnings and errors only.
const logger = ['warn', 'error'] as const;

let app: INestApplication | INestMicroservice;
let counters: { served: number; inFlight: number; byCustomer?: Record<string, number> };
let identity: { iid: string; http?: string };
let servedAtStop: number | undefined;
const report = () =>
  line({
    stats: {
      served: counters.served,
      inFlight: counters.inFlight,
      servedSinceStop: servedAtStop === undefined ? 0 : counters.served - servedAtStop,
      ...(counters.byCustomer === undefined ? {} : { byCustomer: counters.byCustomer }),
    },
  });

if (role === 'gateway') {
  const web = await NestFactory.create(GatewayModule, { logger: [...logger] });
  if (tracing !== undefined) web.useGlobalInterceptors(new tracing.HttpSpanInterceptor());
  web.enableShutdownHooks();
  // In a container (examples/) the gateway's HTTP port is given, as host:port; here any free one on loopback.
  const [httpHost, httpPort] = (process.env.KABLE_SAMPLE_HTTP ?? '127.0.0.1:0').split(/:(?=\d+$)/);
  await web.listen(Number(httpPort), httpHost);
  app = web;
  counters = web.get(GatewayCounters);
  const client = web.get<{ unwrap(): { iid: string }; connect(): Promise<void> }>('CLUSTER');
  // Clients join the cluster on first use; the gateway joins at once so it shows in the table.
  await client.connect();
  identity = { iid: client.unwrap().iid, http: (await web.getUrl()).replace('[::1]', '127.0.0.1') };
} else if (role === 'math' || role === 'orders') {
  const server = new KableServer({ id: role, replica: true, ...sampleNodeOptions(), leaveGrace: 300 });
  const module = role === 'math' ? MathModule : OrdersModule;
  const micro = await NestFactory.createMicroservice<MicroserviceOptions>(module, {
    strategy: server,
    logger: [...logger],
  });
  micro.enableShutdownHooks();
  await micro.listen();
  app = micro;
  counters = micro.get(role === 'math' ? MathCounters : OrdersCounters);
  identity = { iid: server.node.iid };
  // What was served after the node announced STOPPED: only the drain of requests already in flight.
  server.node.on('state', (status) => {
    if (status.state === 'STOPPED' && servedAtStop === undefined) servedAtStop = counters.served;
    report();
  });
} else {
  throw new Error(`unknown role ${role}: use math, orders or gateway`);
}

line({ ready: true, role, pid: process.pid, ...identity });
// The console may be gone (killed first): a closed stdout must not crash a service mid-drain.
process.stdout.on('error', () => undefined);
setInterval(report, 200).unref();
new Logger('sample').debug(`${role} up`);
void app;
