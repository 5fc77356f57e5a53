// One large-payload run, server and client in this one process:
// node --expose-gc --import ./scripts/register-ts.js bench/clients/payload.ts <kable|raw> <bytes> <requests> [discovery JSON]
// Each request carries one Buffer of <bytes>; the handler answers its length; 4 requests in flight.
// Prints {"result":{"bytesPerSecond":..,"peakArrayBuffers":..,"peakRss":..}} (peaks above the idle baseline).
import 'reflect-metadata';
import { firstValueFrom } from 'rxjs';
import { kableInProcess, rawRequests } from './in-process.js';

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
 * The reference: the payload on a bare socket as [u32 length][u32 id][bytes], answered with its length
 * (rawRequests: no copy of the payload on either side beyond the receiver's one join).
 */
const raw = () =>
  rawRequests(
    (bytes) => bytes.length,
    () => payload,
  );

const [call, close] = await (kind === 'raw' ? raw() : kable());
for (let i = 0; i < 8; i++) await call();
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
// Warm-up, loaded as the measurement is, with a quarter of its requests (for either transport): with
// 8 sequential calls only, the 64 KiB row (4,096 requests, a third of a second) was partly measured
// before V8 had optimised the paths it runs, and more so for a transport with more code than a bare
// socket (Kable / raw 0.76 to 1.02 from one full run to the next).
await lanes(Math.max(8, Math.round(requests / 4)));
started = 0;
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
