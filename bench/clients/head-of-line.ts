// Small requests beside bulk uploads from the same client, default options, the server in a child process:
// node --import ./scripts/register-ts.js bench/clients/head-of-line.ts <discovery JSON> <small requests> <upload bytes>
// First the small requests alone (sequential, 16 bytes each), then the same number again while one lane
// uploads <upload bytes> per request back to back on the same client. By default an upload of
// `bulkThreshold` (256 KiB) or more goes over the client's second connection to the server (the bulk lane,
// docs/limits.md), so what the small requests wait for is the server's time, not the upload's bytes.
// Prints {"result":{"alone":{"p50","p99"},"loaded":{"p50","p99"},"uploads","uploadBytesPerSecond",
// "serverFullCollections"}} (ms; the server process's full collections while the uploads ran, which the
// loaded p99 follows: docs/benchmarks.md).
import 'reflect-metadata';
import { firstValueFrom } from 'rxjs';
import { childStats } from '../servers/process-stats.js';
import { quantile, run } from '../support.js';
import { kableClient } from './in-process.js';

const [discoveryJson, smallText, uploadText] = process.argv.slice(2);
const smallRequests = Number(smallText);
const upload = Buffer.alloc(Number(uploadText), 1);
const small = Buffer.alloc(16, 1);

const server = run('bench/servers/bytes-server.ts', ['kable', discoveryJson], undefined, [], 0);
await server.next('ready');
const { client, close } = await kableClient(JSON.parse(discoveryJson) as unknown, 'bytes');
const send = (bytes: Buffer) => firstValueFrom(client.send<number>('bytes', bytes));

/** Sequential small requests; their latencies in ms. */
async function smallOnes(count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    if ((await send(small)) !== small.length) throw new Error('the handler saw the wrong length');
    latencies.push(performance.now() - t0);
  }
  return latencies;
}

// Warm-up of both kinds of request, unmeasured.
await smallOnes(Math.min(1000, smallRequests));
for (let i = 0; i < 4; i++) await send(upload);

const alone = await smallOnes(smallRequests);
const before = await childStats(server);
let uploading = true;
let uploads = 0;
const t0 = performance.now();
const uploader = (async () => {
  while (uploading) {
    if ((await send(upload)) !== upload.length) throw new Error('the handler saw the wrong length');
    uploads++;
  }
})();
const loaded = await smallOnes(smallRequests);
uploading = false;
await uploader;
const seconds = (performance.now() - t0) / 1000;
const after = await childStats(server);
await close();
await server.stop();
const figures = (values: number[]) => ({ p50: quantile(values, 0.5), p99: quantile(values, 0.99) });
process.stdout.write(
  JSON.stringify({
    result: {
      alone: figures(alone),
      loaded: figures(loaded),
      uploads,
      uploadBytesPerSecond: (uploads * upload.length) / seconds,
      serverFullCollections: after.fullCollections - before.fullCollections,
    },
  }) + '\n',
);
process.exit(0);
