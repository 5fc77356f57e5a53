import { afterEach, describe, expect, it } from '@jest/globals';
import { KableSentinel } from '../../lib/node/sentinel.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitForEvent } from '../support/events.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

describe('sentinel', () => {
  it('mirrors its probe: RUNNING while it answers, STOPPED when not, and peers see it', async () => {
    cluster = new MemoryCluster();
    const observer = await cluster.up('observer');
    let healthy = true;
    const sentinel = new KableSentinel(cluster.node('database', {}), { probe: () => healthy, interval: 20 });
    await sentinel.start();
    expect(sentinel.node.state.state).toBe('RUNNING');
    const picked = await observer.pick('database', { timeout: 5000 });
    expect(picked.iid).toBe(sentinel.node.iid);

    const stopped = waitForEvent(
      observer,
      'peer:state',
      (peer: { state: string }) => peer.state === 'STOPPED',
    );
    healthy = false;
    await stopped;
    expect(observer.pickNow('database')).toBeUndefined();

    const back = waitForEvent(observer, 'peer:state', (peer: { state: string }) => peer.state === 'RUNNING');
    healthy = true;
    await back;
    expect(observer.pickNow('database')?.iid).toBe(sentinel.node.iid);
    await sentinel.stop();
  });

  it('counts a throwing or hanging probe as a failure', async () => {
    cluster = new MemoryCluster();
    const throwing = new KableSentinel(cluster.node('a', {}), {
      probe: () => {
        throw new Error('no connection');
      },
      interval: 50,
    });
    const hanging = new KableSentinel(cluster.node('b', {}), {
      probe: () => new Promise<boolean>(() => undefined),
      interval: 50,
      probeTimeout: 10,
    });
    await Promise.all([throwing.start(), hanging.start()]);
    expect(throwing.node.state).toMatchObject({ state: 'STOPPED', reason: 'probe failed' });
    expect(hanging.node.state).toMatchObject({ state: 'STOPPED', reason: 'probe failed' });
  });

  it('needs a probe', () => {
    cluster = new MemoryCluster();
    expect(() => new KableSentinel(cluster.node('a', {}), {} as never)).toThrow(/probe/);
  });
});
