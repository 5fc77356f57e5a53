import { afterEach, describe, expect, it } from '@jest/globals';
import type { KableNode } from '../../lib/node/kable-node.js';
import { RoundRobin } from '../../lib/node/round-robin.js';
import { compareNodes } from '../../lib/node/peer-record.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitUntil } from '../support/events.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

async function replicas(count: number): Promise<{ client: KableNode; math: KableNode[] }> {
  cluster = new MemoryCluster();
  const client = await cluster.up('gateway');
  const math: KableNode[] = [];
  for (let i = 0; i < count; i++) math.push(await cluster.up('math', { replica: true }));
  await waitUntil(
    () => client.running('math').length === count,
    [client],
    ['peer:added', 'peer:state'],
    5000,
    'replicas',
  );
  return { client, math };
}

describe('rotation', () => {
  it('orders replicas by index then instance id, identically on every observer', async () => {
    const { client, math } = await replicas(4);
    const other = await cluster.up('other');
    await waitUntil(
      () => other.running('math').length === 4,
      [other],
      ['peer:added'],
      5000,
      'other sees math',
    );
    const expected = [...math].sort(compareNodes).map((node) => node.iid);
    expect(client.running('math').map((peer) => peer.iid)).toEqual(expected);
    expect(other.running('math').map((peer) => peer.iid)).toEqual(expected);
    expect(client.pickNow('math')?.iid).toBe(expected[0]);
    expect(client.pickNow('math')?.iid).toBe(expected[1]);
  });

  it.each([
    [3, 3000],
    [4, 1001],
    [7, 50],
  ])('spreads N picks over k replicas N/k ± 1 each (k=%i, N=%i)', async (k, n) => {
    const { client } = await replicas(k);
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const peer = client.pickNow('math')!;
      counts.set(peer.iid, (counts.get(peer.iid) ?? 0) + 1);
    }
    expect(counts.size).toBe(k);
    for (const count of counts.values()) {
      expect(Math.abs(count - n / k)).toBeLessThanOrEqual(1);
    }
  });

  it.each(['doing', 'stop', 'up-state', 'down'] as const)(
    'a replica leaving RUNNING (%s) leaves the rotation at once and comes back when RUNNING',
    async (how) => {
      const { client, math } = await replicas(3);
      const leaver = math[1];
      if (how === 'up-state') {
        // UP is reachable only from DOWN: take the replica down and bring it up without running.
        await leaver.down();
        await waitUntil(
          () => client.peer(leaver.iid) === undefined,
          [client],
          ['peer:removed'],
          5000,
          'removal',
        );
        await leaver.up(false);
        await waitUntil(
          () => client.peer(leaver.iid)?.state === 'UP',
          [client],
          ['peer:added', 'peer:state'],
          5000,
          'UP seen',
        );
      } else if (how === 'down') {
        await leaver.down();
      } else {
        leaver[how]('busy');
      }
      await waitUntil(
        () => client.running('math').length === 2,
        [client],
        ['peer:state', 'peer:removed'],
        5000,
        'leave',
      );
      for (let i = 0; i < 30; i++) expect(client.pickNow('math')?.iid).not.toBe(leaver.iid);
      if (how === 'down') await leaver.up();
      else leaver.start();
      await waitUntil(
        () => client.running('math').length === 3,
        [client],
        ['peer:state', 'peer:added'],
        5000,
        'return',
      );
      const picked = new Set(Array.from({ length: 3 }, () => client.pickNow('math')!.iid));
      expect(picked.has(leaver.iid)).toBe(true);
    },
  );

  it('does not reset the cursor on churn', () => {
    const robin = new RoundRobin<string>();
    expect(robin.select(['a', 'b', 'c'])).toBe('a');
    expect(robin.select(['a', 'b', 'c'])).toBe('b');
    // 'd' joins at the end: the next pick continues at position 2, not back at 'a'.
    expect(robin.select(['a', 'b', 'c', 'd'])).toBe('c');
    expect(robin.select(['a', 'b', 'c', 'd'])).toBe('d');
    expect(robin.select(['a', 'b'])).toBe('a');
    expect(robin.select([])).toBeUndefined();
  });
});
