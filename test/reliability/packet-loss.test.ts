import { describe, expect, it, jest } from '@jest/globals';
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
// nodeTimeout 10.5 s) in a moment; deliveries still run on the real setImmediate.
describe('advert loss with the default timings', () => {
  it('20% loss evicts a peer only after three adverts in a row were lost to that observer', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const random = seeded(20);
    const runs = new Map<string, number>();
    const longestRun = new Map<string, number>();
    const cluster = new MemoryCluster({
      filter: (advert, from, to) => {
        if (advert.event !== 'advertisement') return true;
        const pair = `${to.port}<-${from.port}`;
        const lost = random() < 0.2;
        const run = lost ? (runs.get(pair) ?? 0) + 1 : 0;
        runs.set(pair, run);
        longestRun.set(pair, Math.max(longestRun.get(pair) ?? 0, run));
        return !lost;
      },
    });
    try {
      const nodes = await Promise.all(
        [1, 2, 3, 4].map((i) => cluster.up(`n${i}`, { advertiseInterval: 3000 })),
      );
      await jest.advanceTimersByTimeAsync(3000);
      const evicted = new Set<string>();
      nodes.forEach((node, i) =>
        node.on('peer:removed', (peer: PeerRecord, reason: string) => {
          if (reason === 'timeout')
            evicted.add(`${i + 1}<-${nodes.findIndex((n) => n.iid === peer.iid) + 1}`);
        }),
      );
      for (let step = 0; step < 200; step++) {
        await jest.advanceTimersByTimeAsync(3000);
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Bus addresses are 1..4 in creation order, as are the node numbers.
      const safePairs = [...longestRun].filter(([, run]) => run < 3).map(([pair]) => pair);
      expect(safePairs.length).toBeGreaterThan(0);
      for (const pair of safePairs) expect(evicted.has(pair)).toBe(false);
      for (const pair of evicted) expect(longestRun.get(pair)).toBeGreaterThanOrEqual(3);
      // And the cluster heals: the next advert that gets through brings an evicted peer back.
      await jest.advanceTimersByTimeAsync(3000);
      await new Promise((resolve) => setImmediate(resolve));
      const lossNow = [...runs.values()].some((run) => run > 0);
      if (!lossNow) for (const node of nodes) expect(node.peers()).toHaveLength(3);
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
      // The sweep runs every tenth of nodeTimeout: eviction lands within nodeTimeout plus one sweep.
      await jest.advanceTimersByTimeAsync(1000 + Math.ceil(nodeTimeout / 10) + 1);
      for (const node of nodes) expect(node.peers()).toHaveLength(0);
    } finally {
      jest.useRealTimers();
      await cluster.close();
    }
  });
});
