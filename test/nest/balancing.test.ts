import { afterEach, describe, expect, it } from '@jest/globals';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { firstValueFrom } from 'rxjs';
import { EJECT_AFTER } from '../../lib/node/replica-health.js';
import { InProcessCluster } from './fixtures/in-process.js';
import { UnevenBehaviour, UnevenModule } from './fixtures/uneven.module.js';

/** Real Nest apps over real TCP: a caller's rotation leaves out a slow replica and a failing one. */
describe('balancing around a slow or failing replica', () => {
  const cluster = new InProcessCluster();
  afterEach(() => cluster.close());

  async function trio(): Promise<UnevenBehaviour[]> {
    const apps = await Promise.all([1, 2, 3].map(() => cluster.service(UnevenModule, 'uneven')));
    return apps.map((app) => app.get(UnevenBehaviour));
  }

  /** Sends `count` requests one after another; counts the failures. */
  async function sequential(send: () => Promise<unknown>, count: number): Promise<number> {
    let failures = 0;
    for (let i = 0; i < count; i++) await send().catch(() => failures++);
    return failures;
  }

  it('by default sends a replica 5x slower than the others only probes after warm-up', async () => {
    const replicas = await trio();
    replicas[2].delayMs = 100;
    const client = cluster.client({ target: 'uneven' });
    await client.whenServed('work', { count: 3 });
    const send = (): Promise<unknown> => firstValueFrom(client.send('work', {}));
    expect(await sequential(send, 30)).toBe(0);
    const before = replicas.map((replica) => replica.served);
    expect(await sequential(send, 240)).toBe(0);
    const served = replicas.map((replica, i) => replica.served - before[i]);
    // Round robin gives it 80 of the 240. Past its warm-up (8 replies) its replies are slow for 500 ms
    // (about 4 more) before it is left out; then it gets a probe a second (the run takes about 5 s).
    expect(served[2]).toBeLessThanOrEqual(16);
    expect(served[0] + served[1] + served[2]).toBe(240);
    expect(client.excludedReplicas()).toEqual([expect.objectContaining({ reason: 'latency' })]);
    expect(client.node.stats()['client.latencyOutliers']).toBe(1);
  }, 30_000);

  it('by default ejects a replica after 5 internal errors in a row; one answering RpcExceptions keeps its share', async () => {
    const replicas = await trio();
    replicas[1].fail = 'internal';
    replicas[2].fail = 'rpc';
    const client = cluster.client({ target: 'uneven' });
    await client.whenServed('work', { count: 3 });
    const send = (): Promise<unknown> => firstValueFrom(client.send('work', {}));
    await sequential(send, 90);
    // Ejected after its 5th failure (the 15th request), for 30 s: nothing more reaches it.
    expect(replicas[1].served).toBe(EJECT_AFTER);
    // The application's own errors are answers: the RpcException replica keeps half of the rest.
    expect(Math.abs(replicas[2].served - replicas[0].served)).toBeLessThanOrEqual(1);
    expect(client.excludedReplicas()).toEqual([expect.objectContaining({ reason: 'failures' })]);
    expect(client.node.stats()).toMatchObject({ 'client.ejectedReplicas': 1, 'client.ejections': 1 });
  }, 30_000);

  it("with balance: 'least-latency' sends a replica 5x slower than the others a small share", async () => {
    const replicas = await trio();
    replicas[2].delayMs = 100;
    const client = cluster.client({ target: 'uneven', balance: 'least-latency' });
    await client.whenServed('work', { count: 3 });
    const send = (): Promise<unknown> => firstValueFrom(client.send('work', {}));
    expect(await sequential(send, 30)).toBe(0);
    const before = replicas[2].served;
    expect(await sequential(send, 240)).toBe(0);
    // Two random candidates: the slow one wins only against a replica not yet timed or long idle.
    expect(replicas[2].served - before).toBeLessThanOrEqual(16);
  }, 30_000);

  it('with excludeUnhealthy: false keeps a slow replica in the rotation, as plain round robin', async () => {
    const replicas = await trio();
    replicas[2].delayMs = 100;
    const client = cluster.client({ target: 'uneven', excludeUnhealthy: false });
    await client.whenServed('work', { count: 3 });
    const send = (): Promise<unknown> => firstValueFrom(client.send('work', {}));
    const before = replicas.map((replica) => replica.served);
    expect(await sequential(send, 60)).toBe(0);
    expect(replicas.map((replica, i) => replica.served - before[i])).toEqual([20, 20, 20]);
    expect(client.excludedReplicas()).toEqual([]);
    expect(() => new KableClientProxy({ excludeUnhealthy: 'yes' as never })).toThrow(
      'KableClientProxy option "excludeUnhealthy" must be true (the default) or false; got "yes".',
    );
  }, 30_000);

  it('refuses an unknown balance at construction, naming the accepted ones', () => {
    expect(() => new KableClientProxy({ balance: 'random' as never })).toThrow(
      `KableClientProxy option "balance" must be 'round-robin' (the default) or 'least-latency'; got "random".`,
    );
  });
});
