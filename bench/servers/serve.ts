// One benchmark server process: node --import ./scripts/register-ts.js bench/servers/serve.ts <kind> [discovery JSON] [nats-server port]
// Prints {"ready":true,"port":N}; answers "cpu" on stdin with {"cpu":<microseconds of CPU used so far>}.
import 'reflect-metadata';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { KableServer } from '../../lib/nest/kable.server.js';
import { applyOtelVariant } from '../otel-variant.js';
import { BenchMathModule } from './math.controller.js';

const [kind, discoveryJson, natsPort] = process.argv.slice(2);
await applyOtelVariant();
/** A fixed key for the encrypted configuration: the bench measures cost, not secrecy. */
const BENCH_KEY = Buffer.alloc(32, 42).toString('base64');
const line = (value: unknown) => process.stdout.write(JSON.stringify(value) + '\n');

async function kable(key?: string): Promise<number> {
  const server = new KableServer({
    id: 'math',
    host: '127.0.0.1',
    discovery: JSON.parse(discoveryJson),
    key,
  });
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(BenchMathModule, {
    strategy: server,
    logger: false,
  });
  await app.listen();
  return server.node.port;
}

async function nestTcp(): Promise<number> {
  const port = await freePort();
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(BenchMathModule, {
    transport: Transport.TCP,
    options: { host: '127.0.0.1', port },
    logger: false,
  });
  await app.listen();
  return port;
}

/** The practical limit: length-prefixed MessagePack over a bare socket, no framework, no batching tricks. */
async function raw(corked = false): Promise<number> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const encoder = new Encoder();
    const decoder = new Decoder();
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const out: Uint8Array[] = [];
      let offset = 0;
      while (pending.length - offset >= 4) {
        const length = pending.readUInt32BE(offset);
        if (pending.length - offset - 4 < length) break;
        const [id, numbers] = decoder.decode(pending.subarray(offset + 4, offset + 4 + length)) as [
          number,
          number[],
        ];
        offset += 4 + length;
        let total = 0;
        for (const n of numbers) total += n;
        const body = encoder.encode([id, total]);
        const header = Buffer.alloc(4);
        header.writeUInt32BE(body.length);
        out.push(header, body);
      }
      pending = pending.subarray(offset);
      if (out.length === 0) return;
      if (!corked) socket.write(Buffer.concat(out));
      else {
        // Corked until the end of the tick: replies to several reads leave in one writev.
        if (socket.writableCorked === 0) {
          socket.cork();
          process.nextTick(() => socket.uncork());
        }
        for (const part of out) socket.write(part);
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const start = {
  kable: () => kable(),
  'kable-tls': () => kable(BENCH_KEY),
  'nest-tcp': nestTcp,
  raw: () => raw(),
  'raw-corked': () => raw(true),
  // Peers a user would pick instead, loaded only for their own rows.
  'moleculer-tcp': async () => (await import('../peers/moleculer.js')).serveMoleculer(),
  'nest-nats': async () => (await import('../peers/nest-nats.js')).serveNestNats(Number(natsPort)),
}[kind];
if (start === undefined) throw new Error(`unknown server kind ${kind}`);
const port = await start();
line({ ready: true, port });
createInterface({ input: process.stdin }).on('line', (command) => {
  if (command === 'cpu') {
    const usage = process.cpuUsage();
    line({ cpu: usage.user + usage.system });
  }
  if (command === 'exit') process.exit(0);
});
