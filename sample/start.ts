// npm start: the sample cluster on this machine (loopback only). A gateway, three `math` replicas and two
// `orders` replicas, each its own process; traffic through the gateway; a live table of the cluster; and
// a script: a replica turns busy, one is stopped and drained, one is killed, a new one joins. Orders are
// keyed by customer (key affinity): the table shows each orders replica's customers, by range.
//   --watch   keep running after the script (Ctrl-C to end)
//   --json    print the summary as JSON (for scripts and the test)
//   --quiet   no live table
//   --redis[=redis://host:port]   discover through Redis instead of multicast (default redis://127.0.0.1:6379)
//   --trace   with OpenTelemetry: send one order through gateway -> orders -> math, print its trace tree, end
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ClusterWatcher } from '../lib/watch/cluster-watcher.js';
import { renderTable } from '../lib/watch/render-table.js';
import { SAMPLE_CUSTOMERS, sampleDiscovery, serviceArguments } from './sample-options.js';
import { renderTraceTree } from './trace-tree.js';
import type { PrintedSpan } from './tracing.js';

const args = new Set(process.argv.slice(2));
const redisFlag = process.argv.slice(2).find((arg) => arg === '--redis' || arg.startsWith('--redis='));
if (redisFlag !== undefined) {
  const url = redisFlag.includes('=') ? redisFlag.slice('--redis='.length) : 'redis://127.0.0.1:6379';
  process.env.KABLE_SAMPLE_DISCOVERY = JSON.stringify({ mode: 'redis', url, advertiseInterval: 500 });
}
const watchMode = args.has('--watch');
const json = args.has('--json');
const traceMode = args.has('--trace');
const quiet = args.has('--quiet') || json || traceMode;
/** --trace: every span the services ended, with the service that printed it. */
const spans: Array<PrintedSpan & { service: string }> = [];
let onSpan: (() => void) | undefined;

interface Service {
  name: string;
  role: string;
  child: ChildProcess;
  iid?: string;
  http?: string;
  served: number;
  inFlight: number;
  servedSinceStop: number;
  /** orders replicas: orders served per customer. */
  byCustomer: Record<string, number>;
  exited: Promise<void>;
}

const services: Service[] = [];
const counts = { math: 0, orders: 0 };
const log: string[] = [];
const note = (text: string) => {
  log.push(`${((performance.now() - t0) / 1000).toFixed(1)}s ${text}`);
  if (!quiet) draw();
};
const t0 = performance.now();

function launch(role: 'math' | 'orders' | 'gateway'): Promise<Service> {
  const name = role === 'gateway' ? 'gateway' : `${role}#${++counts[role]}`;
  const child = spawn(process.execPath, ['--import', './scripts/register-ts.js', ...serviceArguments(role)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      KABLE_SAMPLE_DISCOVERY: JSON.stringify(sampleDiscovery()),
      ...(traceMode ? { KABLE_SAMPLE_TRACE: '1' } : {}),
    },
  });
  const service: Service = {
    name,
    role,
    child,
    served: 0,
    inFlight: 0,
    servedSinceStop: 0,
    byCustomer: {},
    exited: new Promise((resolve) => child.on('exit', () => resolve())),
  };
  services.push(service);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      if (!text.startsWith('{')) return; // a log line, not a report
      const message = JSON.parse(text) as {
        ready?: boolean;
        iid?: string;
        http?: string;
        stats?: {
          served: number;
          inFlight: number;
          servedSinceStop: number;
          byCustomer?: Record<string, number>;
        };
        span?: PrintedSpan;
      };
      if (message.span) {
        spans.push({ ...message.span, service: name });
        onSpan?.();
      }
      if (message.ready) {
        service.iid = message.iid;
        service.http = message.http;
        resolve(service);
      }
      if (message.stats) {
        service.served = message.stats.served;
        service.inFlight = message.stats.inFlight;
        service.servedSinceStop = message.stats.servedSinceStop;
        service.byCustomer = message.stats.byCustomer ?? {};
      }
    });
    void service.exited.then(() => reject(new Error(`${name} exited before it was ready`)));
  });
}

const watcher = new ClusterWatcher({ discovery: sampleDiscovery() });

function draw(): void {
  const names = new Map(services.filter((s) => s.iid).map((s) => [s.iid!, s.name]));
  const served = new Map(services.filter((s) => s.iid).map((s) => [s.iid!, s.served]));
  const inFlight = new Map(services.filter((s) => s.iid).map((s) => [s.iid!, s.inFlight]));
  const table = renderTable(watcher.nodes(), { names, served, inFlight });
  const traffic = `requests: ${result.sent} sent, ${result.ok} ok, ${result.failed} failed`;
  process.stdout.write(
    `\x1b[2J\x1b[Hnestjs-kable sample cluster\n\n${table}\n\n${customerTable()}\n\n${traffic}\n\n${log.slice(-8).join('\n')}\n`,
  );
}

/** The customers in ranges of five; the gateway keys orders by customer (key affinity). */
const RANGES = Array.from({ length: Math.ceil(SAMPLE_CUSTOMERS / 5) }, (_, r) => {
  const customers = Array.from({ length: 5 }, (_, i) => r * 5 + i).filter((c) => c < SAMPLE_CUSTOMERS);
  return { label: `c-${customers[0]}..${customers.at(-1)}`, customers: customers.map((c) => `c-${c}`) };
});

/** Orders per orders replica per customer range: each customer's orders stay on one replica. */
function customerTable(): string {
  const orders = services.filter((s) => s.role === 'orders');
  const width = 12;
  const header = ['orders by customer'.padEnd(20), ...RANGES.map((r) => r.label.padStart(width))].join('');
  const rows = orders.map((service) =>
    [
      service.name.padEnd(20),
      ...RANGES.map((range) =>
        String(range.customers.reduce((sum, c) => sum + (service.byCustomer[c] ?? 0), 0)).padStart(width),
      ),
    ].join(''),
  );
  const split = customersOnSeveralReplicas();
  return [header, ...rows, `customers served by more than one orders replica: ${split}`].join('\n');
}

/** Customers whose orders reached more than one orders replica (0 while both stay up: affinity). */
function customersOnSeveralReplicas(): number {
  const replicasOf = new Map<string, number>();
  for (const service of services.filter((s) => s.role === 'orders'))
    for (const customer of Object.keys(service.byCustomer))
      replicasOf.set(customer, (replicasOf.get(customer) ?? 0) + 1);
  return [...replicasOf.values()].filter((count) => count > 1).length;
}

const result = { sent: 0, ok: 0, failed: 0, errors: {} as Record<string, number> };
let driving = true;

async function drive(gateway: string): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (driving) {
      const path = i++ % 5 === 4 ? '/order' : '/sum?n=4';
      result.sent++;
      const response = await fetch(gateway + path).catch(() => undefined);
      if (response?.ok) {
        result.ok++;
        await response.arrayBuffer();
        continue;
      }
      result.failed++;
      const body =
        response === undefined
          ? { code: 'GATEWAY_UNREACHABLE' }
          : ((await response.json()) as { code?: string });
      const code = body.code ?? `HTTP_${response?.status}`;
      result.errors[code] = (result.errors[code] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

function until(condition: () => boolean, what: string, timeout = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      watcher.off('change', check);
      reject(
        new Error(
          `Timed out waiting for ${what}; the cluster: ${JSON.stringify(watcher.nodes().map((n) => [n.id, n.iid.slice(0, 8), n.state]))}; services: ${JSON.stringify(services.map((s) => [s.name, s.iid?.slice(0, 8)]))}`,
        ),
      );
    }, timeout);
    const check = () => {
      if (!condition()) return;
      clearTimeout(timer);
      watcher.off('change', check);
      resolve();
    };
    watcher.on('change', check);
    check();
  });
}

const stateOf = (service: Service) => watcher.nodes().find((n) => n.iid === service.iid)?.state;
const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

await watcher.start();
const redraw = quiet ? undefined : setInterval(draw, 250);
watcher.on('change', () => (quiet ? undefined : draw()));

const gateway = await launch('gateway');
const maths = await Promise.all([launch('math'), launch('math'), launch('math')]);
await Promise.all([launch('orders'), launch('orders')]);
await until(() => services.every((s) => stateOf(s) === 'RUNNING'), 'every node to be RUNNING');
if (traceMode) await traceOneOrder();
note('all six nodes RUNNING; traffic starts');
const traffic = drive(gateway.http!);
await settle(2000);

// 1. A replica turns busy: a @KableDoing handler runs for 2.5 s.
const rebuilding = fetch(`${gateway.http}/rebuild?ms=2500`);
await until(() => maths.some((m) => stateOf(m) === 'DOING_SOMETHING'), 'a busy replica');
const busy = maths.find((m) => stateOf(m) === 'DOING_SOMETHING')!;
// Settled adverts first: requests already on their way when it turned busy may still land.
await settle(300);
const servedWhenBusy = busy.served;
note(`${busy.name} is busy (rebuilding the cache): skipped`);
await until(() => stateOf(busy) === 'RUNNING', 'the busy replica to finish', 10_000);
const servedWhileBusy = busy.served - servedWhenBusy;
await rebuilding;
note(`${busy.name} is RUNNING again`);
await settle(1000);

// 2. One is stopped and drained (SIGTERM: Nest's shutdown hooks run Kable's graceful leave).
const stopped = maths.find((m) => m !== busy)!;
note(`${stopped.name} stopping (SIGTERM): drains, then leaves`);
stopped.child.kill('SIGTERM');
await stopped.exited;
const servedAfterStop = stopped.servedSinceStop;
note(`${stopped.name} gone after serving ${stopped.served}`);
await settle(1000);

// 3. One is killed outright: only its in-flight requests may fail.
const killed = maths.find((m) => m !== busy && m !== stopped)!;
const failedBeforeKill = result.failed;
note(`${killed.name} killed (SIGKILL)`);
killed.child.kill('SIGKILL');
await killed.exited;
await settle(1500);
const failedAroundKill = result.failed - failedBeforeKill;

// 4. A new replica joins and gets traffic.
const fresh = await launch('math');
await until(() => stateOf(fresh) === 'RUNNING', 'the new replica');
note(`${fresh.name} joined`);
await settle(2000);

if (watchMode) {
  note('--watch: the cluster keeps running; Ctrl-C ends it');
  if (json) process.stdout.write(JSON.stringify({ watching: true }) + '\n');
  await new Promise((resolve) => process.once('SIGINT', resolve));
}

driving = false;
await traffic;
for (const service of services) if (service.child.exitCode === null) service.child.kill('SIGTERM');
await Promise.all(services.map((s) => s.exited));
if (redraw) clearInterval(redraw);
await watcher.stop();

const summary = {
  requests: result,
  servedPerReplica: Object.fromEntries(
    services.filter((s) => s.role !== 'gateway').map((s) => [s.name, s.served]),
  ),
  busy: { replica: busy.name, servedWhileBusy },
  stopped: { replica: stopped.name, served: stopped.served, servedAfterStop },
  killed: { replica: killed.name, failedAroundKill },
  joined: { replica: fresh.name, served: fresh.served },
  affinity: {
    customersByReplica: Object.fromEntries(
      services.filter((s) => s.role === 'orders').map((s) => [s.name, Object.keys(s.byCustomer).sort()]),
    ),
    customersOnSeveralReplicas: customersOnSeveralReplicas(),
  },
  explanation:
    result.failed === 0
      ? 'no request failed'
      : `${result.failed} request(s) failed: ${JSON.stringify(result.errors)}, all in flight on ${killed.name} when it was killed`,
};
if (json) process.stdout.write(JSON.stringify({ summary }) + '\n');
else {
  if (!quiet) draw();
  process.stdout.write(`\nSummary\n${JSON.stringify(summary, null, 2)}\n`);
}

/**
 * --trace: one order through the gateway (HTTP), which asks orders, which asks math; every service
 * prints its spans; the tree shows one trace id across the three processes. Then the cluster stops.
 */
async function traceOneOrder(): Promise<never> {
  // Five spans per order: the gateway's HTTP span and CLIENT span, orders' SERVER and CLIENT spans, math's
  // SERVER span. Waits for them, at most 5 s.
  const spansOf = (orders: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      onSpan = () => {
        if (spans.length < 5 * orders) return;
        clearTimeout(timer);
        resolve();
      };
      onSpan();
    });
  // Four orders warm up (each orders replica's client joins and learns who serves what on its first
  // call); the fifth is the one shown.
  for (let i = 0; i < 4; i++) await (await fetch(`${gateway.http}/order`)).text();
  await spansOf(4);
  spans.length = 0;
  const response = await fetch(`${gateway.http}/order`);
  const body = await response.text();
  await spansOf(1);
  for (const service of services) service.child.kill('SIGTERM');
  await Promise.all(services.map((s) => s.exited));
  await watcher.stop();
  const tree = renderTraceTree(spans);
  if (json) process.stdout.write(JSON.stringify({ trace: { response: body, spans, tree } }) + '\n');
  else process.stdout.write(`GET /order -> ${body}\n\n${tree}\n`);
  process.exit(0);
}
