// One large-payload run:
// node --expose-gc --import ./scripts/register-ts.js bench/clients/payload.ts <kable|raw> <bytes> <requests> <discovery JSON> [one|two] [in flight] [default|tuned]
// Each request carries one Buffer of <bytes>; the handler answers its length; 4 requests in flight unless
// told. Layout "one": server and client in this one process; "two": the server in a child process of its own
// (bench/servers/bytes-server.ts, on core 0 when pinning is available), the usual deployment. Every Kable
// option is its default: a user's bulk upload runs with them. "tuned" starts that server process (either
// transport's) with LARGE_UPLOAD_SETTINGS (bench/support.ts): Node and glibc settings, not Kable options.
// Prints {"result":{"bytesPerSecond":..,"peakArrayBuffers":..,"peakRss":..}} (peaks above the idle baseline,
// this process only: both ends in layout "one", the caller's in layout "two"), and the server process's
// full collections, minor page faults and CPU per request over the timed phase (layout "one": this one's).
import 'reflect-metadata';
import { firstValueFrom } from 'rxjs';
import {
  childStats,
  countFullCollections,
  processStats,
  type ProcessStats,
} from '../servers/process-stats.js';
import { LARGE_UPLOAD_SETTINGS, run, type Child } from '../support.js';
import { kableClient, kableInProcess, rawClient, rawRequests } from './in-process.js';

const [
  kind,
  sizeText,
  requestsText,
  discoveryJson,
  layout = 'one',
  inFlightText = '4',
  settings = 'default',
] = process.argv.slice(2);
const size = Number(sizeText);
const requests = Number(requestsText);
const IN_FLIGHT = Number(inFlightText);
const payload = Buffer.alloc(size, 1);
const discovery = JSON.parse(discoveryJson) as unknown;

type Call = () => Promise<number>;

/** The server in a child process of its own; resolves with its port once it listens. */
async function serverChild(): Promise<[Child, number]> {
  const tuned = settings === 'tuned';
  const child = run(
    'bench/servers/bytes-server.ts',
    [kind, discoveryJson],
    tuned ? LARGE_UPLOAD_SETTINGS.env : undefined,
    tuned ? LARGE_UPLOAD_SETTINGS.nodeOptions : [],
    0,
  );
  serverProcess = child;
  const { port } = (await child.next('ready')) as { port: number };
  return [child, port];
}

/**
 * The server's collection, fault and CPU counts, read around the timed phase: the server child's in layout
 * "two", this process's (both ends) in layout "one".
 */
let serverProcess: Child | undefined;
async function serverStats(): Promise<ProcessStats> {
  return serverProcess === undefined ? processStats() : childStats(serverProcess);
}

async function kable(): Promise<[Call, () => Promise<void>]> {
  if (layout === 'two') {
    const [server] = await serverChild();
    const { client, close } = await kableClient(discovery, 'bytes');
    return [
      () => firstValueFrom(client.send<number>('bytes', payload)),
      async () => (await close(), await server.stop()),
    ];
  }
  const { client, close } = await kableInProcess(discovery, 'bytes');
  return [() => firstValueFrom(client.send<number>('bytes', payload)), close];
}

/**
 * The reference: the payload on a bare socket as [u32 length][u32 id][bytes], answered with its length
 * (no copy of the payload on either side beyond the receiver's one join).
 */
async function raw(): Promise<[Call, () => Promise<void>]> {
  if (layout === 'two') {
    const [server, port] = await serverChild();
    const [call, close] = await rawClient(port, () => payload);
    return [call, async () => (await close(), await server.stop())];
  }
  return rawRequests(
    (bytes) => bytes.length,
    () => payload,
  );
}

countFullCollections();
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
// Warm-up, loaded as the measurement is (for either transport): a quarter of the requests, and at least
// WARM_UP_BYTES or 8,192 requests, whichever is fewer. V8 optimises a function once it has run enough
// bytecode, and a request through Kable runs many small functions (Nest's pipeline, the client's
// Observable, the frame code): with a quarter only, the 64 KiB row (1,024 requests of warm-up, then 4,096
// timed) measured each process before it was optimised, Kable's per-request CPU still 60–110 µs at
// either end against 27–38 once warm (the raw socket's 31–68 against 15–35). With the server's
// `--interrupt-budget` lowered to a quarter (V8 optimises sooner), the same short run gave the server
// 39–49 µs. A service runs warm; the table measures that.
const WARM_UP_BYTES = 512 * 1024 * 1024;
await lanes(Math.max(8, Math.round(requests / 4), Math.min(8192, Math.round(WARM_UP_BYTES / size))));
started = 0;
const statsBefore = await serverStats();
const cpuBefore = process.cpuUsage();
const t0 = performance.now();
await lanes(requests);
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpuBefore);
const statsAfter = await serverStats();
started = 0;
// Memory last, in its own phase: after each reply, a forced GC, then the live ArrayBuffer bytes (what
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
await close();
const serverCounts = {
  serverFullCollections: statsAfter.fullCollections - statsBefore.fullCollections,
  serverMinorFaults: statsAfter.minorFaults - statsBefore.minorFaults,
  // CPU per request in µs, to tell which end a gap comes from (not shown in the table; in layout "one"
  // this process's, both ends).
  serverUserCpuPerRequest: (statsAfter.userCpu - statsBefore.userCpu) / requests,
  serverSystemCpuPerRequest: (statsAfter.systemCpu - statsBefore.systemCpu) / requests,
};
process.stdout.write(
  JSON.stringify({
    result: {
      bytesPerSecond: (requests * size) / seconds,
      peakArrayBuffers,
      peakRss,
      callerUserCpuPerRequest: cpu.user / requests,
      callerSystemCpuPerRequest: cpu.system / requests,
      ...serverCounts,
    },
  }) + '\n',
);
process.exit(0);
