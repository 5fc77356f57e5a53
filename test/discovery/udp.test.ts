import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes, randomInt } from 'node:crypto';
import { kable } from '../../lib/kable.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { DiscoveryOptions, KableOptions } from '../../lib/node/options.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { waitForEvent, waitUntil } from '../support/events.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';

const nodes: KableNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((node) => node.down()));
});

async function up(id: string, discovery: DiscoveryOptions, options: KableOptions = {}): Promise<KableNode> {
  const node = kable(id, {
    host: '127.0.0.1',
    ...options,
    discovery: { advertiseInterval: 50, ...discovery },
  });
  nodes.push(node);
  await node.up();
  return node;
}

function knowsAll(group: KableNode[]): () => boolean {
  return () => group.every((node) => group.every((other) => node.peer(other.iid) !== undefined));
}

const modes: Array<[string, () => DiscoveryOptions[]]> = [
  [
    'broadcast on 127.255.255.255',
    () => {
      const port = randomInt(20_000, 60_000);
      return [1, 2, 3].map(() => ({ mode: 'broadcast' as const, address: '127.255.255.255', port }));
    },
  ],
  [
    'multicast through 127.0.0.1',
    () => {
      const discovery = loopbackDiscovery(50);
      return [discovery, discovery, discovery];
    },
  ],
  [
    'unicast to 127.0.0.1 ports',
    () => {
      const base = randomInt(20_000, 60_000);
      const ports = [base, base + 1, base + 2];
      return ports.map((port) => ({
        mode: 'unicast' as const,
        port,
        interface: '127.0.0.1',
        peers: ports.filter((p) => p !== port).map((p) => `127.0.0.1:${p}`),
      }));
    },
  ],
];

describe.each(modes)('UDP discovery, %s', (_name, options) => {
  it('finds every node, propagates state changes, and hears the unregister', async () => {
    const [a, b, c] = options();
    const group = [
      await up('math', a, { replica: true }),
      await up('math', b, { replica: true }),
      await up('orders', c),
    ];
    await waitUntil(knowsAll(group), group, ['peer:added'], 5000, 'every node to know every other');
    expect(group[0].running('math')).toHaveLength(2);

    const seen = waitForEvent(
      group[2],
      'peer:state',
      (peer: PeerRecord) => peer.iid === group[0].iid && peer.state === 'DOING_SOMETHING',
    );
    group[0].doing('reindexing');
    const [peer] = (await seen) as [PeerRecord];
    expect(peer.reason).toBe('reindexing');
    expect(group[2].running('math').map((p) => p.iid)).toEqual([group[1].iid]);

    const removed = waitForEvent(
      group[2],
      'peer:removed',
      (p: PeerRecord, _reason: string) => p.iid === group[1].iid,
    );
    await group[1].down();
    const [, reason] = (await removed) as [PeerRecord, string];
    expect(reason).toBe('unregister');
  });
});

describe('UDP discovery boundaries', () => {
  it('keeps namespaces apart and counts the other namespace as dropped', async () => {
    const discovery = loopbackDiscovery(50);
    const a1 = await up('a1', discovery, { namespace: 'alpha' });
    const a2 = await up('a2', discovery, { namespace: 'alpha' });
    const b = await up('b', discovery, { namespace: 'beta' });
    await waitUntil(knowsAll([a1, a2]), [a1, a2], ['peer:added'], 5000, 'alpha to form');
    await waitUntil(() => (b.stats()['dropped.otherNamespace'] ?? 0) >= 4, [b], ['warning'], 5000, 'drops');
    expect(b.peers().filter((p) => !p.self)).toEqual([]);
    expect(a1.peer(b.iid)).toBeUndefined();
  });

  it('never admits a node sealed with another key, nor an unsealed one', async () => {
    const discovery = loopbackDiscovery(50);
    const key = randomBytes(32).toString('base64');
    const k1 = await up('k1', discovery, { key });
    const k2 = await up('k2', discovery, { key });
    const stranger = await up('stranger', discovery, { key: randomBytes(32).toString('base64') });
    const open = await up('open', discovery);
    await waitUntil(knowsAll([k1, k2]), [k1, k2], ['peer:added'], 5000, 'the keyed pair');
    await waitUntil(
      () => (k1.stats()['dropped.unknownKey'] ?? 0) >= 3 && (k1.stats()['dropped.unsealed'] ?? 0) >= 3,
      [k1],
      ['warning'],
      5000,
      'the strangers to be dropped',
    );
    expect(k1.peer(stranger.iid)).toBeUndefined();
    expect(k1.peer(open.iid)).toBeUndefined();
    expect(stranger.peer(k1.iid)).toBeUndefined();
    expect(open.peer(k1.iid)).toBeUndefined();
  });

  it('rotates keys across a cluster: [new, old] nodes talk to both generations', async () => {
    const discovery = loopbackDiscovery(50);
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('base64');
    const old = await up('old', discovery, { key: oldKey });
    const rotating = await up('rotating', discovery, { keys: [newKey, oldKey] });
    const renewed = await up('renewed', discovery, { key: newKey });
    await waitUntil(
      () =>
        old.peer(rotating.iid) === undefined &&
        rotating.peer(old.iid) !== undefined &&
        renewed.peer(rotating.iid) !== undefined,
      [rotating, renewed],
      ['peer:added'],
      5000,
      'the rotating node to hear both and be heard by the renewed one',
    );
    expect(rotating.peer(renewed.iid)).toBeDefined();
  });

  it('fails at up() when the port or interface cannot be used, with a clear error', async () => {
    const bad = kable('x', {
      host: '127.0.0.1',
      discovery: {
        mode: 'unicast',
        interface: '192.0.2.1',
        port: randomInt(20_000, 60_000),
        peers: ['127.0.0.1:1'],
      },
    });
    await expect(bad.up()).rejects.toMatchObject({
      code: 'KABLE_DISCOVERY_BIND',
      message: expect.stringContaining('192.0.2.1'),
    });
    expect(bad.state.state).toBe('DOWN');
  });

  it('refuses at up() a meta that would not fit in one datagram', async () => {
    const node = kable('big', {
      host: '127.0.0.1',
      meta: { blob: 'x'.repeat(2000) },
      discovery: loopbackDiscovery(),
    });
    await expect(node.up()).rejects.toThrow(/over the 1200-byte limit: make "meta" smaller/);
  });

  it('rejects bad discovery options at construction', () => {
    expect(() => kable('x', { discovery: { mode: 'smoke' as never } })).toThrow(
      /discovery.mode must be one of/,
    );
    expect(() => kable('x', { discovery: { mode: 'multicast', address: '10.0.0.1' } })).toThrow(
      /not a multicast group/,
    );
    expect(() => kable('x', { discovery: { mode: 'unicast' } })).toThrow(/needs discovery.peers/);
    expect(() => kable('x', { discovery: { port: 70000 } })).toThrow(/discovery.port/);
    expect(() => kable('x', { key: 'short' })).toThrow(/32 random bytes/);
  });
});
