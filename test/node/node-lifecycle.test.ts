import { afterEach, describe, expect, it } from '@jest/globals';
import { KableStateError } from '../../lib/node/errors.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitForEvent } from '../support/events.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

describe('node lifecycle', () => {
  it('up() goes RUNNING by default and up(false) stays UP', async () => {
    cluster = new MemoryCluster();
    const a = cluster.node('a');
    const b = cluster.node('b');
    expect(a.state.state).toBe('DOWN');
    await a.up();
    await b.up(false);
    expect(a.state.state).toBe('RUNNING');
    expect(b.state.state).toBe('UP');
  });

  it('methods move through the table and throw on forbidden moves', async () => {
    cluster = new MemoryCluster();
    const node = cluster.node('a');
    expect(() => node.start()).toThrow(KableStateError);
    await node.up(false);
    node.doing('warming caches');
    expect(node.state).toMatchObject({ state: 'DOING_SOMETHING', reason: 'warming caches' });
    node.stop('maintenance');
    node.start();
    expect(node.state.state).toBe('RUNNING');
    expect(() => node.start()).toThrow(/RUNNING to RUNNING/);
    await expect(node.up()).rejects.toThrow(KableStateError);
    await node.down();
    expect(node.state.state).toBe('DOWN');
    await node.down(); // idempotent: closing twice is normal in shutdown paths
    expect(() => node.doing()).toThrow(/DOWN to DOING_SOMETHING/);
  });

  it('peers see state changes and the reason, and unregister on down', async () => {
    cluster = new MemoryCluster();
    const watcher = await cluster.up('watcher');
    const added = waitForEvent(watcher, 'peer:added', (peer: any) => peer.id === 'worker');
    const worker = await cluster.up('worker', { meta: { zone: 'a' } });
    const [peer] = (await added) as any[];
    expect(peer).toMatchObject({
      id: 'worker',
      iid: worker.iid,
      state: 'RUNNING',
      meta: { zone: 'a' },
      host: '127.0.0.1',
    });

    const busy = waitForEvent(
      watcher,
      'peer:state',
      (p: any) => p.iid === worker.iid && p.state === 'DOING_SOMETHING',
    );
    worker.doing('rebuilding index');
    const [changed, previous] = (await busy) as any[];
    expect(previous).toBe('RUNNING');
    expect(changed.reason).toBe('rebuilding index');

    const removed = waitForEvent(watcher, 'peer:removed', (p: any) => p.iid === worker.iid);
    await worker.down();
    const [, reason] = (await removed) as any[];
    expect(reason).toBe('unregister');
    expect(watcher.peer(worker.iid)).toBeUndefined();
  });

  it('coalesces a flapping node into few updates whose last state always arrives', async () => {
    cluster = new MemoryCluster();
    const watcher = await cluster.up('watcher', { advertiseInterval: 60_000 });
    const flapper = cluster.node('flapper', { advertiseInterval: 60_000 });
    const seen = waitForEvent(watcher, 'peer:added');
    await flapper.up();
    await seen;
    const sentBefore = flapper.stats().advertsSent;
    for (let i = 0; i < 200; i++) {
      flapper.doing(`step ${i}`);
      flapper.start();
    }
    flapper.stop('final');
    await waitForEvent(watcher, 'peer:state', (p: any) => p.iid === flapper.iid && p.reason === 'final');
    // 401 changes in one tick: the first goes at once, the rest become one trailing update.
    expect(flapper.stats().advertsSent - sentBefore).toBeLessThanOrEqual(2);
    expect(watcher.peer(flapper.iid)?.state).toBe('STOPPED');
  });
});
