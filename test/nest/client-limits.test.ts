import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { PayloadModule } from './fixtures/payload.module.js';

// Real Nest apps and real TCP data planes in one process, discovery on the in-memory bus.
const MAX_TIMER_MS = 2 ** 31 - 1; // the longest delay a Node timer keeps

let bus = new MemoryBus();
const apps: INestMicroservice[] = [];
const clients: KableClientProxy[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await Promise.all(apps.splice(0).map((app) => app.close()));
  bus = new MemoryBus();
});

async function service(options: Partial<ConstructorParameters<typeof KableServer>[0]> = {}) {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(PayloadModule, {
    strategy: new KableServer({
      id: 'payload',
      replica: true,
      host: '127.0.0.1',
      discovery: { transport: bus.transport(), advertiseInterval: 50 },
      ...options,
    }),
    logger: false,
  });
  await app.listen();
  apps.push(app);
  return app;
}

function client(options: ConstructorParameters<typeof KableClientProxy>[0] = {}): KableClientProxy {
  const proxy = new KableClientProxy({
    host: '127.0.0.1',
    discovery: { transport: bus.transport(), advertiseInterval: 50 },
    ...options,
  });
  clients.push(proxy);
  return proxy;
}

describe('client and server options', () => {
  it('refuse delays Node timers cannot keep, naming the option', () => {
    expect(() => new KableClientProxy({ timeout: MAX_TIMER_MS + 1 })).toThrow(
      /KableClientProxy option "timeout" must be at most 2147483647 ms/,
    );
    expect(() => new KableClientProxy({ pickTimeout: MAX_TIMER_MS + 1 })).toThrow(/"pickTimeout".*at most/);
    expect(() => new KableServer({ id: 'math', drainTimeout: MAX_TIMER_MS + 1 })).toThrow(
      /KableServer option "drainTimeout" must be at most/,
    );
    expect(() => new KableServer({ id: 'math', leaveGrace: MAX_TIMER_MS + 1 })).toThrow(/"leaveGrace"/);
  });

  it('refuse byte sizes that cannot work', () => {
    expect(() => new KableClientProxy({ maxQueuedBytes: 10 })).toThrow(
      /KableClientProxy option "maxQueuedBytes" must be a whole number of bytes from 1024/,
    );
    expect(() => new KableClientProxy({ maxFrameSize: 2 ** 32 })).toThrow(/"maxFrameSize"/);
    expect(() => new KableServer({ id: 'math', writeHighWaterMark: -1 })).toThrow(
      /KableServer option "writeHighWaterMark"/,
    );
    expect(() => new KableServer({ id: 'math', maxFrameSize: 1.5 })).toThrow(/"maxFrameSize"/);
  });
});

describe('payloads over the frame limit', () => {
  it('a 20 MiB request fails alone with KABLE_PAYLOAD_TOO_LARGE; a concurrent small one is served', async () => {
    const app = await service();
    const proxy = client();
    await proxy.whenServed('size');
    expect(await firstValueFrom(proxy.send('size', { blob: 'warm' }))).toBe(4);
    const big = firstValueFrom(proxy.send('size', { blob: Buffer.alloc(20 * 1024 * 1024, 1) })).then(
      () => undefined,
      (error: unknown) => error,
    );
    const small = firstValueFrom(proxy.send('size', { blob: 'small' }));
    const [error, answer] = await Promise.all([big, small]);
    expect(answer).toBe(5);
    expect(error).toMatchObject({ code: 'KABLE_PAYLOAD_TOO_LARGE', retryable: false });
    expect((error as Error).message).toMatch(
      /"size" not sent: it is 2097\d{4} bytes encoded, over the 16777216-byte limit/,
    );
    const server = (app as unknown as { serverInstance: KableServer }).serverInstance;
    expect(server.node.stats()).toMatchObject({
      'dataPlane.connections': 1,
      'dataPlane.openConnections': 1,
    });
  });

  it('a reply over the client limit reaches that caller as an error; others are served', async () => {
    await service();
    const proxy = client({ maxFrameSize: 1024 * 1024 });
    await proxy.whenServed('make');
    const [error, answer] = await Promise.all([
      firstValueFrom(proxy.send('make', 2 * 1024 * 1024)).then(
        () => undefined,
        (e: unknown) => e,
      ),
      firstValueFrom(proxy.send('echo', 'small')),
    ]);
    expect(answer).toBe('small');
    expect(error).toMatchObject({ code: 'KABLE_PAYLOAD_TOO_LARGE', limit: 1024 * 1024 });
  });
});

describe('KableClientProxy lifecycle', () => {
  it('serves again after close() and connect(), as Nest allows', async () => {
    await service();
    const proxy = client({ pickTimeout: 3000 });
    await proxy.connect();
    await proxy.whenServed('echo');
    expect(await firstValueFrom(proxy.send('echo', 1))).toBe(1);
    await proxy.close();
    await proxy.connect();
    await proxy.whenServed('echo');
    expect(await firstValueFrom(proxy.send('echo', 2))).toBe(2);
    // And without an explicit connect(): send() connects, as with Nest's own clients.
    await proxy.close();
    expect(await firstValueFrom(proxy.send('echo', 3))).toBe(3);
  });
});
