import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { kable } from '../../lib/kable.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { KableOptions } from '../../lib/node/options.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { waitForEvent, waitUntil } from '../support/events.js';
import { RedisServer, redisServerPath } from '../support/redis-server.js';
import { describeNeeding } from '../support/requirements.js';

// CI installs redis-server (.ci/run) and fails without it; a laptop without it skips, with a warning.
const describeWithRedis = describeNeeding(
  redisServerPath() === undefined
    ? 'no redis-server on this machine (apt-get install redis-server)'
    : undefined,
  'the Redis discovery tests',
);

describeWithRedis('discovery through Redis', () => {
  const redis = new RedisServer();
  const nodes: KableNode[] = [];

  beforeAll(() => redis.start());
  afterAll(() => redis.stop());
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((node) => node.down()));
  });

  async function up(id: string, interval: number, extra: KableOptions = {}): Promise<KableNode> {
    const node = kable(id, {
      host: '127.0.0.1',
      namespace: `t${randomBytes(4).toString('hex')}`,
      ...extra,
      discovery: { mode: 'redis', url: redis.url, advertiseInterval: interval, nodeTimeout: interval * 4 },
    });
    nodes.push(node);
    await node.up();
    return node;
  }

  const knowsAll = (group: KableNode[]) => () =>
    group.every((node) => group.every((other) => other === node || node.peer(other.iid) !== undefined));

  it('finds every node, and a node started later learns all of them at once from the snapshot', async () => {
    // Adverts only every 5 s: the latecomer can only know the others this fast through the snapshot.
    const namespace = 'snapshot';
    const first = await Promise.all(['a', 'b', 'c'].map((id) => up(id, 5000, { namespace })));
    await waitUntil(knowsAll(first), first, ['peer:added'], 4000, 'the first three');
    const late = await up('late', 5000, { namespace });
    await waitUntil(() => late.peers().length === 3, [late], ['peer:added'], 1000, 'the latecomer');
    expect(
      late
        .peers()
        .map((p) => p.id)
        .sort(),
    ).toEqual(['a', 'b', 'c']);
  });

  it('keeps sealed clusters apart: a node with another key is never admitted', async () => {
    const key = randomBytes(32).toString('base64');
    const namespace = 'sealed';
    const a = await up('a', 100, { namespace, key });
    const b = await up('b', 100, { namespace, key });
    const stranger = await up('stranger', 100, { namespace, key: randomBytes(32).toString('base64') });
    await waitUntil(knowsAll([a, b]), [a, b], ['peer:added'], 4000, 'the keyed pair');
    await waitUntil(() => (a.stats()['dropped.unknownKey'] ?? 0) > 0, [a], ['warning'], 4000, 'a drop');
    expect(a.peer(stranger.iid)).toBeUndefined();
    expect(stranger.peers()).toEqual([]);
  });

  it('survives a Redis restart: nobody is marked down for the outage, everyone re-announces', async () => {
    const namespace = 'restart';
    const group = await Promise.all(['a', 'b', 'c'].map((id) => up(id, 100, { namespace })));
    await waitUntil(knowsAll(group), group, ['peer:added'], 4000, 'the cluster');
    const removed: PeerRecord[] = [];
    for (const node of group) node.on('peer:removed', (peer: PeerRecord) => removed.push(peer));
    await redis.stop();
    // Time is the subject: an outage of three node timeouts (4 intervals each).
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await redis.start();
    // After the restart Redis is empty; the re-announcements rebuild the snapshot for a newcomer.
    const late = await up('late', 5000, { namespace });
    await waitUntil(() => late.peers().length === 3, [late], ['peer:added'], 4000, 'the rebuilt snapshot');
    expect(removed).toEqual([]);
    expect(knowsAll(group)()).toBe(true);
    expect(group[0].stats().reconnects).toBeGreaterThanOrEqual(1);
  });

  it('fails at up() with a clear error when Redis is unreachable', async () => {
    const node = kable('x', { discovery: { mode: 'redis', url: 'redis://127.0.0.1:1' } });
    await expect(node.up()).rejects.toMatchObject({
      code: 'KABLE_DISCOVERY_BIND',
      message: expect.stringContaining('Redis'),
    });
  });

  it('hears an unregister at once', async () => {
    const namespace = 'down';
    const [a, b] = await Promise.all([up('a', 100, { namespace }), up('b', 100, { namespace })]);
    await waitUntil(knowsAll([a, b]), [a, b], ['peer:added'], 4000, 'the pair');
    const gone = waitForEvent(a, 'peer:removed', (p: PeerRecord, _reason: string) => p.iid === b.iid);
    await b.down();
    expect(((await gone) as [PeerRecord, string])[1]).toBe('unregister');
  });
});
