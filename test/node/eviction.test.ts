import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { kable } from '../../lib/kable.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitForEvent } from '../support/events.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

describe('peer timeout', () => {
  it('defaults nodeTimeout to 3.5 advert intervals (docs/configuration.md), and to 10500 ms with the default interval', () => {
    cluster = new MemoryCluster();
    expect(cluster.node('a', { advertiseInterval: 1000 }).nodeTimeout).toBe(3500);
    const node = kable('b', {}); // never started: nothing is sent

    expect({ advertiseInterval: node.advertiseInterval, nodeTimeout: node.nodeTimeout }).toEqual({
      advertiseInterval: 3000,
      nodeTimeout: 10_500,
    });
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
    // Time is the subject: fake clocks make "two intervals of silence" exact whatever the machine's
    // load; deliveries still run on the real setImmediate.
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      let toDrop = 0;
      let lossyIid = '';
      let dropped = 0;
      cluster = new MemoryCluster({
        filter: (advert) => {
          if (advert.iid !== lossyIid || advert.event !== 'advertisement' || toDrop === 0) return true;
          toDrop--;
          dropped++;
          return false;
        },
      });
      const watcher = await cluster.up('watcher', { advertiseInterval: 1000 });
      const lossy = await cluster.up('lossy', { advertiseInterval: 1000 });
      await new Promise((resolve) => setImmediate(resolve));
      expect(watcher.peer(lossy.iid)).toBeDefined();
      const removals: string[] = [];
      watcher.on('peer:removed', (peer) => removals.push(peer.iid));
      lossyIid = lossy.iid;
      // Five times over: lose two adverts in a row, then let the third through.
      for (let round = 0; round < 5; round++) {
        toDrop = 2;
        for (let tick = 0; tick < 3; tick++) {
          await jest.advanceTimersByTimeAsync(1000);
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      expect(dropped).toBe(10);
      expect(removals).toEqual([]);
      expect(watcher.peer(lossy.iid)?.state).toBe('RUNNING');
      // Silence for longer than nodeTimeout (every advert lost, probe answers too) does evict: the
      // test can fail.
      toDrop = Number.POSITIVE_INFINITY;
      const probesBefore = watcher.stats().probesSent;
      await jest.advanceTimersByTimeAsync(4000);
      expect(removals).toEqual([lossy.iid]);
      expect(watcher.stats().probesSent).toBeGreaterThan(probesBefore);
    } finally {
      jest.useRealTimers();
    }
  });

  it("does not count the node's own stalled event loop as its peers' silence", async () => {
    // A stall is simulated exactly: both clocks jump by 5 s (more than nodeTimeout, 3.5 s) and the overdue
    // sweep runs before the adverts sent meanwhile are delivered, as after a real stall the timers phase
    // comes before the sockets are read. Deliveries run on the real setImmediate. (The wall clock alone
    // jumping is a clock set forward, not a stall: own-stalls.test.ts.)
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const fakeNow = performance.now.bind(performance);
    let stalled = 0;
    const monotonic = jest.spyOn(performance, 'now').mockImplementation(() => fakeNow() + stalled);
    try {
      let silenced = '';
      cluster = new MemoryCluster({ filter: (advert) => advert.iid !== silenced });
      const watcher = await cluster.up('watcher', { advertiseInterval: 1000 });
      const peer = await cluster.up('peer', { advertiseInterval: 1000 });
      await new Promise((resolve) => setImmediate(resolve));
      expect(watcher.peer(peer.iid)).toBeDefined();
      const removals: string[] = [];
      watcher.on('peer:removed', (removed) => removals.push(removed.iid));
      await jest.advanceTimersByTimeAsync(900);

      jest.setSystemTime(Date.now() + 5000);
      stalled += 5000;
      jest.advanceTimersByTime(200); // synchronous: the sweep runs, nothing is delivered yet
      await new Promise((resolve) => setImmediate(resolve));
      await jest.advanceTimersByTimeAsync(1000);

      expect(removals).toEqual([]);
      expect(watcher.stats().ownStalls).toBe(1);
      // Real silence after the stall is still counted: the peer goes once it is silent for nodeTimeout.
      silenced = peer.iid;
      await jest.advanceTimersByTimeAsync(5000);
      expect(removals).toEqual([peer.iid]);
    } finally {
      monotonic.mockRestore();
      jest.useRealTimers();
    }
  });
});
