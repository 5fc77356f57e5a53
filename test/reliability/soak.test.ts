import { describe, expect, it } from '@jest/globals';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import type { Advert } from '../../lib/node/advert.js';
import { MathModule } from '../nest/fixtures/math.module.js';

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

function listeners(emitter: {
  eventNames(): Array<string | symbol>;
  listenerCount(name: string | symbol): number;
}) {
  return emitter.eventNames().reduce((total, name) => total + emitter.listenerCount(name), 0);
}

describe('soak', () => {
  it('100,000 requests and 10,000 adverts through one node pair leak no memory, listener, timer or socket', async () => {
    const bus = new MemoryBus();
    const discovery = () => ({ transport: bus.transport(), advertiseInterval: 1000 });
    const server = new KableServer({ id: 'math', host: '127.0.0.1', discovery: discovery(), leaveGrace: 0 });
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
      strategy: server,
      logger: false,
    });
    await app.listen();
    const client = new KableClientProxy({ host: '127.0.0.1', target: 'math', discovery: discovery() });
    const fake = bus.transport();
    await fake.start({ advert: () => undefined, warning: () => undefined });
    try {
      await client.whenServed({ cmd: 'sum' });
      const run = async (count: number) => {
        let next = 0;
        await Promise.all(
          Array.from({ length: 50 }, async () => {
            while (next < count) {
              next++;
              await firstValueFrom(client.send({ cmd: 'sum' }, [1, 2]));
            }
          }),
        );
      };
      await run(2000); // warm-up: connections, caches, JIT
      const before = {
        heap: process.memoryUsage().heapUsed,
        resources: resources(),
        listeners: listeners(client.node) + listeners(server.node),
      };

      await run(100_000);
      // 10,000 adverts of one peer, each newer than the last, through the client's node.
      const base: Advert = {
        event: 'advertisement',
        id: 'other',
        iid: 'soak-peer',
        replica: true,
        host: '127.0.0.1',
        port: 1,
        hostname: 'soak',
        pid: 1,
        index: 7,
        startedAt: Date.now(),
        state: 'RUNNING',
        since: Date.now(),
        seq: 0,
        patterns: '',
      };
      for (let seq = 1; seq <= 10_000; seq++) {
        fake.send({ ...base, seq, state: seq % 2 === 0 ? 'RUNNING' : 'DOING_SOMETHING' });
        if (seq % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(client.node.peer('soak-peer')?.seq).toBe(10_000);

      const after = {
        heap: process.memoryUsage().heapUsed,
        resources: resources(),
        listeners: listeners(client.node) + listeners(server.node),
      };
      expect(after.listeners).toBe(before.listeners);
      for (const kind of ['TCPSocketWrap', 'TCPServerWrap'] as const) {
        expect({ kind, count: after.resources[kind] ?? 0 }).toEqual({
          kind,
          count: before.resources[kind] ?? 0,
        });
      }
      // Timers come and go (an update being coalesced, a retry): a couple may be pending at any moment;
      // a leak of one per request would be thousands.
      expect(after.resources.Timeout ?? 0).toBeLessThanOrEqual((before.resources.Timeout ?? 0) + 2);
      // A fixed bound: per-request state must not accumulate (100,000 requests × even 300 bytes = 30 MB).
      expect(after.heap - before.heap).toBeLessThan(24 * 1024 * 1024);
    } finally {
      await fake.stop();
      await client.close();
      await app.close();
    }
  }, 120_000);
});
