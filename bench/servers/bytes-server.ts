// The server half of the payload rows in their two-process layout:
// node --import ./scripts/register-ts.js bench/servers/bytes-server.ts <kable|raw> [discovery JSON]
// kable: a KableServer of BenchBytesModule (id "bytes", default options); raw: the raw reference's server
// (bench/clients/in-process.ts rawServer), answering each frame with its length.
// Prints {"ready":true,"port":N}; on "stats" from stdin prints {"stats":{"fullCollections":N,"minorFaults":N,"userCpu":µs,"systemCpu":µs}}
// (this process's mark-compacts, minor page faults and CPU time so far); exits on "exit".
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { createInterface } from 'node:readline';
import { KableServer } from '../../lib/nest/kable.server.js';
import { rawServer } from '../clients/in-process.js';
import { BenchBytesModule } from './bytes.controller.js';
import { countFullCollections, processStats } from './process-stats.js';

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

countFullCollections();

const port = kind === 'raw' ? (await rawServer((body) => body.length))[0] : await kable();
process.stdout.write(JSON.stringify({ ready: true, port }) + '\n');
createInterface({ input: process.stdin }).on('line', (command) => {
  if (command === 'stats') {
    process.stdout.write(JSON.stringify({ stats: processStats() }) + '\n');
  }
  if (command === 'exit') process.exit(0);
});
