import 'reflect-metadata';
import net from 'node:net';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import type { KableClientOptions } from '../../lib/nest/kable.options.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { BenchBytesModule } from '../servers/bytes.controller.js';

/**
 * A Kable server of BenchBytesModule and a client of it, both in this process (bench/clients/payload.ts
 * and stream.ts); resolves once the client sees `pattern` served.
 */
export async function kableInProcess(
  discovery: unknown,
  pattern: string,
  clientOptions: Partial<KableClientOptions> = {},
): Promise<{ client: KableClientProxy; close: () => Promise<void> }> {
  const server = new KableServer({ id: 'bytes', host: '127.0.0.1', discovery: discovery as never });
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(BenchBytesModule, {
    strategy: server,
    logger: false,
  });
  await app.listen();
  const { client, close } = await kableClient(discovery, pattern, clientOptions);
  return {
    client,
    close: async () => {
      await close();
      await app.close();
    },
  };
}

/**
 * A Kable client of the `bytes` service only (its server runs elsewhere, bench/servers/bytes-server.ts);
 * resolves once it sees `pattern` served.
 */
export async function kableClient(
  discovery: unknown,
  pattern: string,
  clientOptions: Partial<KableClientOptions> = {},
): Promise<{ client: KableClientProxy; close: () => Promise<void> }> {
  const client = new KableClientProxy({
    host: '127.0.0.1',
    target: 'bytes',
    discovery: discovery as never,
    ...clientOptions,
  });
  await client.whenServed(pattern, { timeout: 10_000 });
  return { client, close: () => client.close() };
}

/** Length-prefixed frames out of a byte stream: chunks are kept until a frame is whole, then joined once. */
export function frameReader(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let chunks: Buffer[] = [];
  let buffered = 0;
  return (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    while (buffered >= 4) {
      const head = chunks[0].length >= 4 ? chunks[0] : Buffer.concat(chunks);
      const length = head.readUInt32BE(0);
      if (buffered < 4 + length) return;
      const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, buffered);
      onFrame(all.subarray(4, 4 + length));
      const rest = all.subarray(4 + length);
      chunks = rest.length > 0 ? [rest] : [];
      buffered = rest.length;
    }
  };
}

/**
 * The raw reference of the payload and string rows: frames of [u32 length][u32 id][body] on a bare socket,
 * answered with [u32 id][u32 answer(body)]. The receiver keeps chunks until a frame is whole and joins them
 * once. Resolves with the port and a close.
 */
export async function rawServer(answer: (body: Buffer) => number): Promise<[number, () => void]> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const reader = frameReader((frame) => {
      const reply = Buffer.allocUnsafe(8);
      reply.writeUInt32BE(frame.readUInt32BE(0), 0);
      reply.writeUInt32BE(answer(frame.subarray(4)), 4);
      socket.write(reply);
    });
    socket.on('data', reader);
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return [(server.address() as net.AddressInfo).port, () => server.close()];
}

/**
 * The caller's half of the raw reference: writes the header and `body()` as two chunks, corked until the
 * next tick. Returns the call and a close.
 */
export async function rawClient(
  port: number,
  body: () => Uint8Array,
): Promise<[() => Promise<number>, () => Promise<void>]> {
  const socket = net.connect(port, '127.0.0.1');
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
      const bytes = body();
      const header = Buffer.allocUnsafe(8);
      header.writeUInt32BE(bytes.byteLength + 4, 0);
      header.writeUInt32BE(id, 4);
      socket.cork();
      socket.write(header);
      socket.write(bytes);
      process.nextTick(() => socket.uncork());
    });
  return [
    call,
    async () => {
      socket.destroy();
    },
  ];
}

/** Both halves of the raw reference in this process. */
export async function rawRequests(
  answer: (body: Buffer) => number,
  body: () => Uint8Array,
): Promise<[() => Promise<number>, () => Promise<void>]> {
  const [port, closeServer] = await rawServer(answer);
  const [call, closeClient] = await rawClient(port, body);
  return [
    call,
    async () => {
      await closeClient();
      closeServer();
    },
  ];
}
