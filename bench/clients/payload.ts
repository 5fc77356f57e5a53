// One large-payload run, server and client in this one process:
// node --expose-gc --import ./scripts/register-ts.js bench/clients/payload.ts <kable|raw> <bytes> <requests> [discovery JSON]
// Each request carries one Buffer of <bytes>; the handler answers its length; 4 requests in flight.
// Prints {"result":{"bytesPerSecond":..,"peakArrayBuffers":..,"peakRss":..}} (peaks above the idle baseline).
import 'reflect-metadata';
import net from 'node:net';
import { firstValueFrom } from 'rxjs';
import { frameReader, kableInProcess } from './in-process.js';

const [kind, sizeText, requestsText, discoveryJson] = process.argv.slice(2);
const size = Number(sizeText);
const requests = Number(requestsText);
const IN_FLIGHT = 4;
const payload = Buffer.alloc(size, 1);

type Call = () => Promise<number>;

async function kable(): Promise<[Call, () => Promise<void>]> {
  const { client, close } = await kableInProcess(JSON.parse(discoveryJson), 'bytes', {
    // 4 x 8 MiB in flight is over the default 32 MiB queued toward one server (maxQueuedBytes): raised here.
    maxQueuedBytes: 64 * 1024 * 1024,
  });
  return [() => firstValueFrom(client.send<number>('bytes', payload)), close];
}

/**
 * The reference: frames of [u32 length][u32 id][bytes] on a bare socket, answered with [u32 id][u32 length].
 * The receiver keeps chunks until a frame is whole and joins them once; the sender writes the header and
 * the payload as two chunks, corked (no copy of the payload on either side beyond that one join).
 */
async function raw(): Promise<[Call, () => Promise<void>]> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const reader = frameReader((frame) => {
      const reply = Buffer.allocUnsafe(8);
      reply.writeUInt32BE(frame.readUInt32BE(0), 0);
      reply.writeUInt32BE(frame.length - 4, 4);
      socket.write(reply);
    });
    socket.on('data', reader);
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  const waiting = new Map<number, (length: number) => void>();
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    for (; pending.length - at >= 8; at += 8) {
      const id = pending.readUInt32BE(at);
      waiting.get(id)?.(pending.readUInt32BE(at + 4));
      waiting.delete(id);
    }
    pending = pending.subarray(at);
  });
  let nextId = 0;
  const call = () =>
    new Promise<number>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      const header = Buffer.allocUnsafe(8);
      header.writeUInt32BE(size + 4, 0);
      header.writeUInt32BE(id, 4);
      socket.cork();
      socket.write(header);
      socket.write(payload);
      process.nextTick(() => socket.uncork());
    });
  return [
    call,
    async () => {
      socket.destroy();
      server.close();
    },
  ];
}

const [call, close] = await (kind === 'raw' ? raw() : kable());
for (let i = 0; i < 8; i++) await call(); // warm-up
let started = 0;
const lanes = async (count: number, each?: () => void) =>
  Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (started < count) {
        started++;
        const length = await call();
        if (length !== size) throw new Error(`the handler saw ${length} bytes, not ${size}`);
        each?.();
      }
    }),
  );
// Memory first, in its own phase: after each reply, a forced GC, then the live ArrayBuffer bytes (what
// the transport holds with the other requests in flight, not garbage waiting for a collection).
const gc = globalThis.gc!;
gc();
const base = process.memoryUsage();
let peakArrayBuffers = 0;
let peakRss = 0;
await lanes(32, () => {
  gc();
  const now = process.memoryUsage();
  peakArrayBuffers = Math.max(peakArrayBuffers, now.arrayBuffers - base.arrayBuffers);
  peakRss = Math.max(peakRss, now.rss - base.rss);
});
started = 0;
const t0 = performance.now();
await lanes(requests);
const seconds = (performance.now() - t0) / 1000;
await close();
process.stdout.write(
  JSON.stringify({ result: { bytesPerSecond: (requests * size) / seconds, peakArrayBuffers, peakRss } }) +
    '\n',
);
process.exit(0);
