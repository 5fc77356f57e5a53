import { afterEach, describe, expect, it } from '@jest/globals';
import { randomInt } from 'node:crypto';
import { kable } from '../../lib/kable.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { eventually, waitUntil } from '../support/events.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

const nodes: KableNode[] = [];
const children: ChildFixture[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  await Promise.all(nodes.splice(0).map((node) => node.down()));
});

// Across processes on a machine that may be loaded: a node timeout of 15 advert intervals, so a
// process stalled for a second is not taken for dead; every wait below is derived from these.
const timing = { advertiseInterval: 100, nodeTimeout: 1500 };
/** Eviction: nodeTimeout of silence, noticed at the next sweep, with room for a loaded machine. */
const evictionBound = timing.nodeTimeout + 10 * timing.advertiseInterval + 3000;

function unicastNode(id: string, port: number, seeds: string[]): KableNode {
  const node = kable(id, {
    host: '127.0.0.1',
    discovery: { mode: 'unicast', interface: '127.0.0.1', port, peers: seeds, ...timing },
  });
  nodes.push(node);
  return node;
}

const knowsAll = (group: KableNode[]) => () =>
  group.every((node) => group.every((other) => other === node || node.peer(other.iid) !== undefined));

describe('unicast discovery with gossip', () => {
  it('joins five nodes through one seed, and they keep each other after the seed is killed', async () => {
    const base = randomInt(20_000, 60_000);
    // The seed, in a process of its own so it can be SIGKILLed, lists only itself: it learns the others
    // from what they send it.
    const seedOptions = {
      host: '127.0.0.1',
      discovery: {
        mode: 'unicast',
        interface: '127.0.0.1',
        port: base,
        peers: [`127.0.0.1:${base}`],
        ...timing,
      },
    };
    const seedProcess = runFixture('test/discovery/fixtures/node-process.ts', [
      'seed',
      JSON.stringify(seedOptions),
    ]);
    children.push(seedProcess);
    const seed = { iid: (await seedProcess.ready).iid as string };
    // The others know only the seed, by name: the name is resolved like a headless service's.
    const others = [1, 2, 3, 4].map((i) => unicastNode(`n${i}`, base + i, [`localhost:${base}`]));
    await Promise.all(others.map((node) => node.up()));
    const knowsSeed = () => others.every((node) => node.peer(seed.iid) !== undefined);
    await waitUntil(
      () => knowsAll(others)() && knowsSeed(),
      others,
      ['peer:added'],
      10_000,
      'all five to know each other',
    );

    const removed: string[] = [];
    for (const node of others)
      node.on('peer:removed', (peer: PeerRecord) => removed.push(`${node.id}-x-${peer.id}`));
    seedProcess.child.kill('SIGKILL');
    await seedProcess.exited;
    await waitUntil(
      () => others.every((node) => node.peer(seed.iid) === undefined),
      others,
      ['peer:removed'],
      evictionBound,
      'the dead seed to be evicted',
    );

    // A latecomer joins through any survivor: gossip carries it to all, with no seed left.
    const late = unicastNode('late', base + 9, [`127.0.0.1:${base + 2}`]);
    await late.up();
    await waitUntil(
      knowsAll([...others, late]),
      [...others, late],
      ['peer:added'],
      10_000,
      'the latecomer to be known',
    );
    // Time is the subject: stay past two node timeouts and check nobody evicted a live peer.
    await new Promise((resolve) => setTimeout(resolve, 2 * timing.nodeTimeout));
    expect(knowsAll([...others, late])()).toBe(true);
    expect(removed.filter((entry) => !entry.endsWith('-x-seed'))).toEqual([]);
  });

  it('drops a learned address that stops answering, and keeps sending to seeds', async () => {
    const base = randomInt(20_000, 60_000);
    const a = unicastNode('a', base, [`127.0.0.1:${base + 1}`]);
    const b = unicastNode('b', base + 1, [`127.0.0.1:${base}`]);
    const c = unicastNode('c', base + 2, [`127.0.0.1:${base}`]);
    await Promise.all([a.up(), b.up(), c.up()]);
    await waitUntil(knowsAll([a, b, c]), [a, b, c], ['peer:added'], 10_000, 'all three');
    // c is on b's send list once it answered b's answer to its (relayed) join: a round trip later.
    await eventually(() => b.stats().unicastTargets === 2, "c on b's send list");
    expect(b.stats().unicastTargets).toBe(2);
    await c.down();
    nodes.splice(nodes.indexOf(c), 1);
    // Time is the subject: a learned address silent for nodeTimeout is dropped at b's next advert, so
    // past nodeTimeout and a few intervals c's is gone from b's send list (gossip does not keep a dead
    // address alive), while the seed a stays.
    await new Promise((resolve) =>
      setTimeout(resolve, timing.nodeTimeout + 5 * timing.advertiseInterval + 1000),
    );
    expect(b.stats().unicastTargets).toBe(1);
    expect(a.stats().unicastTargets).toBe(1);
  });
});
