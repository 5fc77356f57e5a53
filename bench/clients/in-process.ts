import 'reflect-metadata';
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
  const client = new KableClientProxy({
    host: '127.0.0.1',
    target: 'bytes',
    discovery: discovery as never,
    ...clientOptions,
  });
  await client.whenServed(pattern, { timeout: 10_000 });
  return {
    client,
    close: async () => {
      await client.close();
      await app.close();
    },
  };
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
