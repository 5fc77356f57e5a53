// The server half of the payload rows in their two-process layout:
// node --import ./scripts/register-ts.js bench/servers/bytes-server.ts <kable|raw> [discovery JSON]
// kable: a KableServer of BenchBytesModule (id "bytes", default options); raw: the raw reference's server
// (bench/clients/in-process.ts rawServer), answering each frame with its length.
// Prints {"ready":true,"port":N}; on "stats" from stdin prints {"stats":{"fullCollections":N,"minorFaults":N}}
// (this process's mark-compacts and minor page faults so far); exits on "exit".
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { KableServer } from '../../lib/nest/kable.server.js';
import { rawServer } from '../clients/in-process.js';
import { BenchBytesModule } from './bytes.controller.js';

const [kind, discoveryJson] = process.argv.slice(2);

async function kable(): Promise<number> {
  const server = new KableServer({ id: 'bytes', host: '127.0.0.1', discovery: JSON.parse(discoveryJson) });
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(BenchBytesModule, {
    strategy: server,
    logger: false,
  });
  await app.listen();
  return server.node.port;
}

// Full collections are counted because a server receiving large binaries can fall into a regime of one every
// frame or two (docs/benchmarks.md, "Why 8 MiB with two processes read 0.67"): the payload rows report them
// per run, for either transport, beside the rates they explain.
let fullCollections = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const { detail } = entry as unknown as { detail?: { kind?: number } };
    if (detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullCollections++;
  }
}).observe({ entryTypes: ['gc'] });

const port = kind === 'raw' ? (await rawServer((body) => body.length))[0] : await kable();
process.stdout.write(JSON.stringify({ ready: true, port }) + '\n');
createInterface({ input: process.stdin }).on('line', (command) => {
  if (command === 'stats') {
    const stats = { fullCollections, minorFaults: process.resourceUsage().minorPageFault };
    process.stdout.write(JSON.stringify({ stats }) + '\n');
  }
  if (command === 'exit') process.exit(0);
});
