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
    const ready = (await Promise.all(replicas.map((r) => r.ready))) as Array<{ iid: string; port: number }>;
    client = new KableClientProxy({ host: '127.0.0.1', discovery, target: 'math', timeout: TIMEOUT });
    const math = client;
    await math.whenServed('who-later', { count: 3, timeout: 10_000 });

    const total = 20_000;
    const concurrency = 20;
    // Phases: the SIGKILL of replica 0 when request 4,000 is sent, a fresh replica at 8,000, the SIGTERM of
    // replica 1 at 12,000. A phase holds the requests sent from its event on and those still in flight
    // when it happened: under load a slow lane's request can be many numbers older than the last 20 sent.
    const inFlight = new Set<number>();
    const phases: Array<{ name: string; from: number; inFlight: Set<number> }> = [];
    const begin = (name: string, from: number) => phases.push({ name, from, inFlight: new Set(inFlight) });
    const phaseOf = (n: number) =>
      phases.findLast((phase) => n >= phase.from || phase.inFlight.has(n))?.name ?? 'calm';
    const failures: Array<{ n: number; phase: string; code: string; to: string; ms: number }> = [];
    let ok = 0;
    let sent = 0;
    const events: Array<Promise<unknown>> = [];
    const worker = async () => {
      while (sent < total) {
        const n = ++sent;
        if (n === 4000) {
          begin('kill', n);
          replicas[0].child.kill('SIGKILL');
        }
        if (n === 8000) {
          begin('restart', n);
          events.push(start().ready.then((line) => ready.push(line as (typeof ready)[0])));
        }
        if (n === 12_000) {
          begin('term', n);
          replicas[1].child.kill('SIGTERM');
        }
        inFlight.add(n);
        const begun = performance.now();
        try {
          expect(ready.map((r) => r.iid)).toContain(await firstValueFrom(math.send<string>('who-later', {})));
          ok++;
        } catch (error) {
          const { code, message } = error as { code?: string; message?: string };
          const port = Number(/connection to [^ ]+:(\d+) /.exec(message ?? '')?.[1]);
          const to = ready.find((r) => r.port === port)?.iid ?? `unknown (${message})`;
          failures.push({ n, phase: phaseOf(n), code: code ?? 'NO_CODE', to, ms: performance.now() - begun });
        } finally {
          inFlight.delete(n);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await Promise.all(events);
    expect(await replicas[1].exited).toBe('SIGTERM');

    // Every request is accounted for. The graceful SIGTERM and the restart cost nothing; around the
    // SIGKILL only requests in flight on the killed replica failed (at most one per caller), each as
    // soon as its connection broke, far within the timeout.
    expect(ok + failures.length).toBe(total);
    expect(failures.filter((f) => f.phase !== 'kill')).toEqual([]);
    expect(failures.filter((f) => f.code !== 'KABLE_PEER_LOST' || f.to !== ready[0].iid)).toEqual([]);
    expect(failures.length).toBeLessThanOrEqual(concurrency);
    for (const failure of failures) expect(failure.ms).toBeLessThan(1000);
  }, 120_000);
});
