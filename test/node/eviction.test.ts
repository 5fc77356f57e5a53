import { afterEach, describe, expect, it } from '@jest/globals';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitForEvent, waitUntil } from '../support/events.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

describe('peer timeout', () => {
  it('defaults nodeTimeout to more than three advert intervals', () => {
    cluster = new MemoryCluster();
    const node = cluster.node('a', { advertiseInterval: 1000 });
    expect(node.nodeTimeout).toBeGreaterThanOrEqual(3 * node.advertiseInterval);
  });

  it('evicts a silent peer after nodeTimeout', async () => {
    let silenced = '';
    cluster = new MemoryCluster({ filter: (advert) => advert.iid !== silenced });
    const watcher = await cluster.up('watcher', { advertiseInterval: 20 });
    const seen = waitForEvent(watcher, 'peer:added');
    const quiet = await cluster.up('quiet', { advertiseInterval: 20 });
    await seen;
    silenced = quiet.iid;
    const [peer, reason] = (await waitForEvent(
      watcher,
      'peer:removed',
      (p: any) => p.iid === quiet.iid,
    )) as any[];
    expect(reason).toBe('timeout');
    // Logical check, not a timing one: eviction came only after the peer was silent for the whole timeout.
    expect(Date.now() - peer.lastSeen).toBeGreaterThan(watcher.nodeTimeout);
    expect(watcher.stats().evictions).toBe(1);
  });

  it('does not evict a peer whose two consecutive adverts were lost', async () => {
    let toDrop = 0;
    let lossyIid = '';
    cluster = new MemoryCluster({
      filter: (advert) => {
        if (advert.iid !== lossyIid || advert.event !== 'advertisement' || toDrop === 0) return true;
        toDrop--;
        return false;
      },
    });
    const watcher = await cluster.up('watcher', { advertiseInterval: 40 });
    const lossy = await cluster.up('lossy', { advertiseInterval: 40 });
    await waitUntil(() => watcher.peer(lossy.iid) !== undefined, [watcher], ['peer:added'], 5000, 'join');
    const removals: string[] = [];
    watcher.on('peer:removed', (peer) => removals.push(peer.iid));
    let rounds = 0;
    // Five times over: lose two adverts in a row, then wait for the third to get through.
    for (; rounds < 5; rounds++) {
      lossyIid = lossy.iid;
      toDrop = 2;
      await waitForEvent(
        cluster.bus,
        'delivery',
        (advert: any, _from: unknown, _to: unknown, dropped: boolean) =>
          advert.iid === lossy.iid && advert.event === 'advertisement' && !dropped && toDrop === 0,
      );
    }
    expect(rounds).toBe(5);
    expect(removals).toEqual([]);
    expect(watcher.peer(lossy.iid)?.state).toBe('RUNNING');
  });
});
