import { afterEach, describe, expect, it } from '@jest/globals';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

const SERVICE = 'test/nest/fixtures/run-service.ts';
const TIMEOUT = 5000;

describe('chaos under load', () => {
  const children: ChildFixture[] = [];
  let client: KableClientProxy | undefined;

  afterEach(async () => {
    await client?.close();
    for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  });

  it('20,000 requests through a SIGKILL, a restart and a SIGTERM: each succeeds or fails with a code, in time', async () => {
    const discovery = loopbackDiscovery();
    const options = JSON.stringify({
      id: 'math',
      replica: true,
      host: '127.0.0.1',
      discovery,
      leaveGrace: 150,
    });
    const start = () => {
      const child = runFixture(SERVICE, ['math', options]);
      children.push(child);
      return child;
    };
    const replicas = [start(), start(), start()];
    await Promise.all(replicas.map((r) => r.ready));
    client = new KableClientProxy({ host: '127.0.0.1', discovery, target: 'math', timeout: TIMEOUT });
    const math = client;
    await math.whenServed('async', { count: 3, timeout: 10_000 });

    const total = 20_000;
    const concurrency = 20;
    const outcomes = { ok: 0, codes: new Map<string, number>(), slowest: 0 };
    let sent = 0;
    const events: Array<Promise<unknown>> = [];
    const worker = async () => {
      while (sent < total) {
        const n = ++sent;
        if (n === 4000) replicas[0].child.kill('SIGKILL');
        if (n === 8000) events.push(start().ready);
        if (n === 12_000) replicas[1].child.kill('SIGTERM');
        const begun = Date.now();
        try {
          expect(await firstValueFrom(math.send('async', n))).toBe(n * 2);
          outcomes.ok++;
        } catch (error) {
          const code = (error as { code?: string }).code ?? 'NO_CODE';
          outcomes.codes.set(code, (outcomes.codes.get(code) ?? 0) + 1);
        }
        outcomes.slowest = Math.max(outcomes.slowest, Date.now() - begun);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await Promise.all(events);
    expect(await replicas[1].exited).toBe('SIGTERM');

    const failed = [...outcomes.codes.values()].reduce((a, b) => a + b, 0);
    // Every request is accounted for; the only failures are requests in flight on the killed replica
    // (at most one per caller); the graceful SIGTERM and the restart cost nothing; nothing waited out
    // its timeout.
    expect(outcomes.ok + failed).toBe(total);
    expect([...outcomes.codes.keys()].filter((code) => code !== 'KABLE_PEER_LOST')).toEqual([]);
    expect(failed).toBeLessThanOrEqual(concurrency);
    expect(outcomes.slowest).toBeLessThan(TIMEOUT);
  }, 120_000);
});
