// One benchmark client process: node --import ./scripts/register-ts.js bench/clients/measure.ts <kind> <port> <discovery JSON> <requests>
// Warms up, measures throughput with 100 requests in flight, then sequential latency; prints {"result":{...}}.
// Prints {"warm":true} and {"loaded":true} around the throughput phase and waits for a line on stdin after each.
import 'reflect-metadata';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { ClientTCP } from '@nestjs/microservices';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { applyOtelVariant } from '../otel-variant.js';

const [kind, portText, discoveryJson, requestsText] = process.argv.slice(2);
await applyOtelVariant();
const port = Number(portText);
const requests = Number(requestsText);
const payload = [1, 2, 3, 4, 5, 6, 7, 8];
const IN_FLIGHT = 100;

type Call = () => Promise<unknown>;

async function kableCaller(key?: string): Promise<[Call, () => Promise<void>]> {
  const client = new KableClientProxy({
    host: '127.0.0.1',
    target: 'math',
    discovery: JSON.parse(discoveryJson),
    key,
  });
  await client.whenServed({ cmd: 'sum' }, { timeout: 10_000 });
  return [() => firstValueFrom(client.send({ cmd: 'sum' }, payload)), () => client.close()];
}

async function nestCaller(): Promise<[Call, () => Promise<void>]> {
  const client = new ClientTCP({ host: '127.0.0.1', port });
  await client.connect();
  return [() => firstValueFrom(client.send({ cmd: 'sum' }, payload)), async () => client.close()];
}

async function rawCaller(corked = false): Promise<[Call, () => Promise<void>]> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  const encoder = new Encoder();
  const decoder = new Decoder();
  const waiting = new Map<number, (value: unknown) => void>();
  let nextId = 0;
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    while (pending.length - offset >= 4) {
      const length = pending.readUInt32BE(offset);
      if (pending.length - offset - 4 < length) break;
      const [id, total] = decoder.decode(pending.subarray(offset + 4, offset + 4 + length)) as [
        number,
        number,
      ];
      offset += 4 + length;
      waiting.get(id)?.(total);
      waiting.delete(id);
    }
    pending = pending.subarray(offset);
  });
  const call = () =>
    new Promise((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      const body = encoder.encode([id, payload]);
      const frame = Buffer.allocUnsafe(4 + body.length);
      frame.writeUInt32BE(body.length, 0);
      frame.set(body, 4);
      // Corked until the end of the tick: the requests started together leave in one writev.
      if (corked && socket.writableCorked === 0) {
        socket.cork();
        process.nextTick(() => socket.uncork());
      }
      socket.write(frame);
    });
  return [call, async () => void socket.end()];
}

const bench = Buffer.alloc(32, 42).toString('base64');
const callers = {
  kable: () => kableCaller(),
  'kable-tls': () => kableCaller(bench),
  'nest-tcp': nestCaller,
  raw: () => rawCaller(),
  'raw-corked': () => rawCaller(true),
  'moleculer-tcp': async () => (await import('../peers/moleculer.js')).moleculerCaller(port, payload),
  'nest-nats': async () => (await import('../peers/nest-nats.js')).nestNatsCaller(port, payload),
};
const [call, close] = await callers[kind as keyof typeof callers]();

// The parent reads the server's CPU time between phases: each phase waits for its "go" line.
const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const phase = async (name: string) => {
  process.stdout.write(JSON.stringify({ [name]: true }) + '\n');
  await commands.next();
};

let started = 0;
const loaded = (count: number) => {
  started = 0;
  return Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (started < count) {
        started++;
        await call();
      }
    }),
  );
};

// Warm-up, so the JIT and connections are settled before measuring: sequential calls, then a loaded
// burst the size of the measured run (at most 20,000), which runs the paths the measurement runs. With
// 2,000 sequential calls only, a 60,000-request run was partly measured before V8 had optimised the
// batched paths, and more so for a transport with more code than a bare socket.
for (let i = 0; i < 2000; i++) await call();
await loaded(Math.min(requests, 20_000));
await phase('warm');

const cpuBefore = process.cpuUsage();
const t0 = performance.now();
await loaded(requests);
const throughput = requests / ((performance.now() - t0) / 1000);
const cpuUsed = process.cpuUsage(cpuBefore);
const clientCpu = (cpuUsed.user + cpuUsed.system) / requests;
await phase('loaded');

const sequential = Math.max(200, Math.floor(requests / 10));
const latencies: number[] = [];
for (let i = 0; i < sequential; i++) {
  const at = performance.now();
  await call();
  latencies.push(performance.now() - at);
}
latencies.sort((a, b) => a - b);
const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
await close();
process.stdout.write(
  JSON.stringify({
    result: { throughput, clientCpu, p50: quantile(0.5), p99: quantile(0.99) },
  }) + '\n',
);
process.exit(0);
