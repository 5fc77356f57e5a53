import { describe, expect, it, jest } from '@jest/globals';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { MemoryCluster } from '../support/memory-cluster.js';

/** A small seeded generator (mulberry32): the same losses on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Time is the subject: fake clocks run ten minutes of the default timings (advertiseInterval 3 s,
// nodeTimeout 10.5 s, a sweep and at most one probe every 500 ms) in a moment; deliveries still run
// on the real setImmediate.
describe('advert loss with the default timings', () => {
  it('20% loss evicts nobody: a silent peer is probed before the timeout decides', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const random = seeded(20);
    const nodes: KableNode[] = [];
    // Adverts sent in answer to a probe, as `${iid}:${seq}`: told apart from the periodic ones below.
    const answers = new Set<string>();
    const answered = new Map<string, number>();
    // Per observer<-peer pair, periodic adverts lost in a row: three in a row evicted a peer before probes.
    const runs = new Map<string, number>();
    let wouldHaveEvicted = 0;
    const cluster = new MemoryCluster({
      filter: (advert, from, to) => {
        if (advert.event !== 'advertisement') return true;
        const lost = random() < 0.2;
        if (advert.probe === undefined && !answers.has(`${advert.iid}:${advert.seq}`)) {
          const pair = `${to.port}<-${from.port}`;
          const run = lost ? (runs.get(pair) ?? 0) + 1 : 0;
          runs.set(pair, run);
          if (run === 3) wouldHaveEvicted++;
        }
        return !lost;
      },
    });
    cluster.bus.on('delivery', (advert, _from, to, dropped) => {
      if (dropped || advert.probe === undefined) return;
      // Bus addresses are 1..4 in creation order, as are the nodes.
      const node = nodes[to.port - 1];
      const count = node.stats().probesAnswered;
      if (count === (answered.get(node.iid) ?? 0)) return;
      answered.set(node.iid, count);
      answers.add(`${node.iid}:${node.peer(node.iid)?.seq}`);
    });
    try {
      for (const i of [1, 2, 3, 4]) nodes.push(cluster.node(`n${i}`, { advertiseInterval: 3000 }));
      await Promise.all(nodes.map((node) => node.up()));
      // Setting up under loss: the first adverts, the join answers (drawn at random moments, so the loss
      // draws fall differently each run) and then periodic adverts, until everyone knows everyone.
      for (let i = 0; i < 10 && nodes.some((node) => node.peers().length < 3); i++) {
        await jest.advanceTimersByTimeAsync(3000);
        await new Promise((resolve) => setImmediate(resolve));
      }
      for (const node of nodes) expect(node.peers()).toHaveLength(3);
      const evictions: string[] = [];
      for (const node of nodes)
        node.on('peer:removed', (peer: PeerRecord, reason: string) => {
          if (reason === 'timeout') evictions.push(`${node.iid} evicted ${peer.iid}`);
        });
      for (let step = 0; step < 200; step++) {
        await jest.advanceTimersByTimeAsync(3000);
        await new Promise((resolve) => setImmediate(resolve));
      }
      // The loss did what used to evict, many times over; the probes caught every case.
      expect(wouldHaveEvicted).toBeGreaterThan(5);
      expect(evictions).toEqual([]);
      for (const node of nodes) expect(node.peers()).toHaveLength(3);
      const total = (key: string) => nodes.reduce((sum, node) => sum + node.stats()[key], 0);
      expect(total('evictions')).toBe(0);
      expect(total('probesAnswered')).toBeGreaterThan(0);
      expect(answers.size).toBeGreaterThan(0);
      // Probes go out only while a peer is silent, at most one per sweep: far fewer than periodic adverts.
      expect(total('probesSent')).toBeLessThan(total('advertsSent') / 2);
    } finally {
      jest.useRealTimers();
      await cluster.close();
    }
  });

  it('100% loss evicts every peer within nodeTimeout (plus one sweep, a tenth of it)', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    let cut = false;
    const cluster = new MemoryCluster({ filter: () => !cut });
    try {
      const nodes = await Promise.all([1, 2, 3].map((i) => cluster.up(`n${i}`, { advertiseInterval: 3000 })));
      await new Promise((resolve) => setImmediate(resolve));
      for (const node of nodes) expect(node.peers()).toHaveLength(2);
      cut = true;
      const nodeTimeout = nodes[0].nodeTimeout;
      await jest.advanceTimersByTimeAsync(nodeTimeout - 1000);
      for (const node of nodes) expect(node.peers()).toHaveLength(2);
      // Probes went unanswered (nothing gets through); the sweep runs every sixth of the advert
      // interval (at most a tenth of nodeTimeout): eviction lands within nodeTimeout plus one sweep.
      await jest.advanceTimersByTimeAsync(1000 + Math.ceil(nodeTimeout / 10) + 1);
      for (const node of nodes) expect(node.peers()).toHaveLength(0);
      for (const node of nodes) expect(node.stats().probesSent).toBeGreaterThan(0);
      for (const node of nodes) expect(node.stats().probesAnswered).toBe(0);
    } finally {
      jest.useRealTimers();
      await cluster.close();
    }
  });
});
