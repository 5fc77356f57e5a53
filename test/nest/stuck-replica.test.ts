import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';
import { MathModule } from './fixtures/math.module.js';

// Two real replicas: one in this process, one in its own, frozen with SIGSTOP, so that it takes bytes
// into the kernel's buffers and then reads nothing more. Requests toward it pile up in the client up to
// maxQueuedBytes; the next one waits there for room (until its timeout), and the rest go to the other,
// whose queue has room.
const SERVICE = 'test/nest/fixtures/run-service.ts';
const KiB = 1024;

describe('a replica that stops reading', () => {
  let frozen: ChildFixture | undefined;
  let healthy: INestMicroservice | undefined;
  let client: KableClientProxy | undefined;

  afterEach(async () => {
    await client?.close();
    if (frozen?.child.exitCode === null) frozen.child.kill('SIGKILL');
    await healthy?.close();
  });

  it('gets no more than the queue cap: the rest is retried on the other replica', async () => {
    // Adverts every second. The client forgets a silent peer only after 10 s, so the frozen replica stays
    // in its registry for the whole test: its requests end by their own 3 s timeout. With the default
    // (3.5 adverts) it would be evicted 2.5-3.5 s after it froze, depending on when it last advertised,
    // and whatever it held would fail as KABLE_PEER_LOST first (CI saw that once on eef1359).
    const discovery = loopbackDiscovery(1000);
    const options = { id: 'math', replica: true, host: '127.0.0.1', discovery, leaveGrace: 0 };
    frozen = runFixture(SERVICE, ['math', JSON.stringify(options)]);
    const server = new KableServer(options);
    healthy = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
      strategy: server,
      logger: false,
    });
    await healthy.listen();
    const frozenReady = await frozen.ready;
    client = new KableClientProxy({
      host: '127.0.0.1',
      discovery: { ...discovery, nodeTimeout: 10_000 },
      target: 'math',
      timeout: 3000,
      maxQueuedBytes: 4096 * KiB,
    });
    await client.whenServed('who', { count: 2, timeout: 10_000 });
    const warm = await Promise.all([1, 2].map(() => firstValueFrom(client!.send<string>('who', {}))));
    expect(new Set(warm).size).toBe(2); // both connections open

    frozen.child.kill('SIGSTOP');
    // 160 requests of 256 KiB, one per turn of the event loop: 20 MB toward the frozen replica, far
    // more than the kernel's buffers take, while the healthy one keeps up with its share.
    const blob = 'x'.repeat(256 * KiB);
    const outcomes: Array<Promise<{ iid?: string; code?: string }>> = [];
    for (let i = 0; i < 160; i++) {
      outcomes.push(
        firstValueFrom(client.send<string>('who', { blob })).then(
          (iid) => ({ iid }),
          (error: { code?: string }) => ({ code: error.code }),
        ),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
    const settled = await Promise.all(outcomes);
    const served = settled.filter((outcome) => outcome.iid === server.node.iid).length;
    const codes = settled.filter((outcome) => outcome.code !== undefined).map((outcome) => outcome.code);
    process.stdout.write(`stuck replica: ${JSON.stringify({ served, failed: codes.length, codes })}\n`);
    expect(settled.some((outcome) => outcome.iid === frozenReady.iid)).toBe(false);
    // No request failed for the cap itself: each one refused was retried and served by the other.
    expect(codes.every((code) => code === 'KABLE_TIMEOUT')).toBe(true);
    // Only what went into the kernel's buffers before the cap is lost to the frozen replica (30 here).
    // Without a cap nothing toward it fails fast: the healthy one served 93 on c857e13, 67 timed out.
    expect(served).toBeGreaterThanOrEqual(115);
    expect(served + codes.length).toBe(160);
    // Whatever waited for room toward the frozen replica timed out and left no trace.
    expect(client.node.stats()['client.waitingForRoom']).toBe(0);
  });
});
