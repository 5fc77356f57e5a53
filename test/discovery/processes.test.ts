import { afterEach, describe, expect, it } from '@jest/globals';
import { randomInt } from 'node:crypto';
import { kable } from '../../lib/kable.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { DiscoveryOptions } from '../../lib/node/options.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { waitForEvent, waitUntil } from '../support/events.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

const FIXTURE = 'test/discovery/fixtures/node-process.ts';
const children: ChildFixture[] = [];
const nodes: KableNode[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  await Promise.all(nodes.splice(0).map((node) => node.down()));
});

type Layout = { parent: DiscoveryOptions; children: DiscoveryOptions[] };

const layouts: Array<[string, () => Layout]> = [
  [
    'broadcast',
    () => {
      const d = { mode: 'broadcast' as const, address: '127.255.255.255', port: randomInt(20_000, 60_000) };
      return { parent: d, children: [d, d] };
    },
  ],
  [
    'multicast',
    () => {
      const d = loopbackDiscovery(50);
      return { parent: d, children: [d, d] };
    },
  ],
  [
    'unicast',
    () => {
      const base = randomInt(20_000, 60_000);
      const ports = [base, base + 1, base + 2];
      const at = (port: number) => ({
        mode: 'unicast' as const,
        interface: '127.0.0.1',
        port,
        peers: ports.filter((p) => p !== port).map((p) => `127.0.0.1:${p}`),
      });
      return { parent: at(ports[0]), children: [at(ports[1]), at(ports[2])] };
    },
  ],
];

describe.each(layouts)('discovery across processes, %s on loopback', (_mode, layout) => {
  it('discovers, propagates state, hears a clean down, and evicts a SIGKILLed node after nodeTimeout', async () => {
    const { parent, children: childOptions } = layout();
    // Across processes on a possibly loaded machine: 15 advert intervals before a silent node is
    // evicted, so a stalled child is not taken for dead; the waits below derive from these.
    const timing = { advertiseInterval: 100, nodeTimeout: 1500 };
    const evictionBound = timing.nodeTimeout + 10 * timing.advertiseInterval + 3000;
    const watcher = kable('watcher', { host: '127.0.0.1', discovery: { ...parent, ...timing } });
    nodes.push(watcher);
    await watcher.up();
    const spawned = childOptions.map((discovery, i) => {
      const child = runFixture(FIXTURE, [
        `worker-${i}`,
        JSON.stringify({ host: '127.0.0.1', discovery: { ...discovery, ...timing } }),
      ]);
      children.push(child);
      return child;
    });
    const [first, second] = (await Promise.all(spawned.map((c) => c.ready))).map((r) => r.iid as string);
    await waitUntil(
      () => watcher.peer(first) !== undefined && watcher.peer(second) !== undefined,
      [watcher],
      ['peer:added'],
      10_000,
      'both child nodes',
    );

    const doing = waitForEvent(
      watcher,
      'peer:state',
      (p: PeerRecord) => p.iid === first && p.state === 'DOING_SOMETHING',
    );
    spawned[0].send('doing nightly export');
    expect(((await doing) as [PeerRecord])[0].reason).toBe('nightly export');

    const unregistered = waitForEvent(
      watcher,
      'peer:removed',
      (p: PeerRecord, _reason: string) => p.iid === first,
    );
    spawned[0].send('down');
    expect(((await unregistered) as [PeerRecord, string])[1]).toBe('unregister');

    const evicted = waitForEvent(
      watcher,
      'peer:removed',
      (p: PeerRecord, _reason: string) => p.iid === second,
      evictionBound,
    );
    spawned[1].child.kill('SIGKILL');
    const [peer, reason] = (await evicted) as [PeerRecord, string];
    expect(reason).toBe('timeout');
    expect(Date.now() - peer.lastSeen).toBeGreaterThanOrEqual(timing.nodeTimeout);
  });
});

describe('a process killed by a signal without shutdown hooks', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'still announces DOWN on %s, and dies of that signal',
    async (signal) => {
      const discovery = { ...loopbackDiscovery(50), nodeTimeout: 60_000 };
      const watcher = kable('watcher', { host: '127.0.0.1', discovery });
      nodes.push(watcher);
      await watcher.up();
      const child = runFixture(FIXTURE, ['worker', JSON.stringify({ host: '127.0.0.1', discovery })]);
      children.push(child);
      const { iid } = await child.ready;
      await waitForEvent(watcher, 'peer:added', (p: PeerRecord) => p.iid === iid);
      const removed = waitForEvent(
        watcher,
        'peer:removed',
        (p: PeerRecord, _reason: string) => p.iid === iid,
      );
      child.child.kill(signal);
      // nodeTimeout is a minute: only the DOWN advert can remove it this fast.
      expect(((await removed) as [PeerRecord, string])[1]).toBe('unregister');
      expect(await child.exited).toBe(signal);
    },
  );
});
