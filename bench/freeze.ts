import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../lib/nest/kable.client.js';
import { loopbackMulticast, run } from './support.js';

export interface FreezeFigures {
  /** Milliseconds from SIGSTOP to the start of the last request that went to the frozen replica. */
  lastRoutedAfter: number;
  /** Requests started during the freeze that went to the frozen replica. */
  routedAfter: number;
  /** Requests that failed (timed out: only the frozen replica makes requests wait). */
  timedOut: number;
  /** Requests completed per second during the freeze over the 2 s before it. */
  throughputRatio: number;
  before: number;
  during: number;
}

/**
 * Three replicas with the default discovery timings (eviction after 10.5 s), a 20-lane closed loop and
 * a 5 s request timeout; one replica is frozen with SIGSTOP for 8 s. With `liveness: false` the client
 * keeps only the load-aware balancer, the reference for what the PING/PONG probe adds.
 */
export async function freezeImpact(liveness: boolean): Promise<FreezeFigures> {
  const discovery = loopbackMulticast();
  const options = JSON.stringify({ id: 'math', replica: true, host: '127.0.0.1', discovery });
  const replicas = [0, 1, 2].map(() => run('test/nest/fixtures/run-service.ts', ['math', options]));
  const ready = await Promise.all(replicas.map((r) => r.next('ready')));
  const victim = ready[0].iid as string;
  const client = new KableClientProxy({
    host: '127.0.0.1',
    target: 'math',
    discovery: discovery as never,
    timeout: 5000,
    ...(liveness ? {} : { liveness: false }),
  });
  try {
    await client.whenServed('who', { count: 3, timeout: 20_000 });
    const done: Array<{ start: number; end: number; iid?: string }> = [];
    let running = true;
    const lanes = Array.from({ length: 20 }, async () => {
      while (running) {
        const start = performance.now();
        try {
          const iid = await firstValueFrom(client.send<string>('who', {}));
          done.push({ start, end: performance.now(), iid });
        } catch {
          done.push({ start, end: performance.now() }); // a timeout: only the frozen replica times out
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const frozenAt = performance.now();
    replicas[0].process.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 8000));
    const thawedAt = performance.now();
    replicas[0].process.kill('SIGCONT');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    running = false;
    await Promise.all(lanes);
    const toVictim = done.filter(
      (d) => d.start >= frozenAt && d.start < thawedAt && (d.iid === victim || d.iid === undefined),
    );
    const lastRouted = toVictim.reduce((last, d) => Math.max(last, d.start), frozenAt);
    const ok = (from: number, to: number) => done.filter((d) => d.iid && d.end >= from && d.end < to).length;
    const before = ok(frozenAt - 2000, frozenAt) / 2;
    const during = ok(frozenAt, thawedAt) / ((thawedAt - frozenAt) / 1000);
    return {
      lastRoutedAfter: lastRouted - frozenAt,
      routedAfter: toVictim.length,
      timedOut: done.filter((d) => d.iid === undefined).length,
      throughputRatio: during / before,
      before,
      during,
    };
  } finally {
    await client.close();
    for (const replica of replicas) replica.process.kill('SIGCONT');
    await Promise.all(replicas.map((r) => r.stop()));
  }
}
