import { afterEach, describe, expect, it } from '@jest/globals';
import { kable } from '../../lib/kable.js';
import { KableOptionsError } from '../../lib/node/errors.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import { KableSentinel } from '../../lib/node/sentinel.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitForEvent, waitUntil } from '../support/events.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';

let cluster: MemoryCluster | undefined;
const udpNodes: KableNode[] = [];
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  await Promise.all(udpNodes.splice(0).map((node) => node.down()));
});

describe('up() and down() called over each other', () => {
  it('up() during a down() still leaving ends RUNNING, heard and hearing', async () => {
    cluster = new MemoryCluster();
    const a = await cluster.up('a');
    const b = await cluster.up('b');
    await waitUntil(() => b.peer(a.iid) !== undefined, [b], ['peer:added']);
    const leaving = a.down('restart');
    const back = a.up();
    await Promise.all([leaving, back]);
    expect(a.state.state).toBe('RUNNING');
    // With its transport: b hears it RUNNING again, and it hears b.
    await waitUntil(
      () => b.peer(a.iid)?.state === 'RUNNING',
      [b],
      ['peer:added', 'peer:state'],
      2000,
      'b to see a',
    );
    await waitUntil(() => a.peer(b.iid) !== undefined, [a], ['peer:added'], 2000, 'a to see b');
    expect(a.stats().datagramsSent).toBeGreaterThan(0);
  });

  it('down() during an up() still joining ends DOWN and silent; the last of many calls wins', async () => {
    cluster = new MemoryCluster();
    const b = await cluster.up('b');
    await cluster.up('c'); // so that b's adverts are delivered (and counted) while a is down
    const a = cluster.node('a');
    const joining = a.up();
    const leaving = a.down();
    await Promise.all([joining, leaving]);
    expect(a.state.state).toBe('DOWN');
    const sent = a.stats().datagramsSent;
    await waitForEvent(cluster.bus, 'delivery', (advert: { iid: string }) => advert.iid === b.iid);
    expect(a.stats().datagramsSent).toBe(sent);

    const calls = [a.up(), a.down(), a.up(), a.down(), a.up()];
    await Promise.allSettled(calls);
    expect(a.state.state).toBe('RUNNING');
    await waitUntil(
      () => b.peer(a.iid)?.state === 'RUNNING',
      [b],
      ['peer:added', 'peer:state'],
      2000,
      'b to see a',
    );
    // join() after a down() that is still leaving joins again.
    const left = a.down();
    const joined = a.join();
    await Promise.all([left, joined]);
    expect(a.state.state).toBe('RUNNING');
  });
});

describe('state reasons', () => {
  it('a long reason is cut to fit, and peers keep the node (real UDP adverts)', async () => {
    const discovery = loopbackDiscovery(50);
    const [a, b] = ['a', 'b'].map((id) => kable(id, { host: '127.0.0.1', discovery }));
    udpNodes.push(a, b);
    await Promise.all([a.up(), b.up()]);
    await waitUntil(() => b.peer(a.iid)?.state === 'RUNNING', [b], ['peer:added', 'peer:state']);
    const stack = new Error('database unreachable').stack!.repeat(20) + ' ünïcødé ✓'.repeat(100);
    a.stop(stack);
    expect(Buffer.byteLength(a.state.reason!)).toBeLessThanOrEqual(200);
    expect(a.state.reason!.endsWith('…')).toBe(true);
    expect(stack.startsWith(a.state.reason!.slice(0, -1))).toBe(true);
    await waitUntil(
      () => b.peer(a.iid)?.state === 'STOPPED',
      [b],
      ['peer:state'],
      3000,
      'b to see a STOPPED',
    );
    expect(b.peer(a.iid)?.reason).toBe(a.state.reason);
    // And its DOWN, with a long reason too, still reaches the peer.
    const removed = waitForEvent(
      b,
      'peer:removed',
      (peer: { iid: string }, _reason: string) => peer.iid === a.iid,
      3000,
    );
    await a.down('x'.repeat(5000));
    expect((await removed)[1]).toBe('unregister');
  });

  it('up() checks the advert fits with the longest reason, not only with none', async () => {
    // Fits without a reason, not with a 200-byte one.
    const node = kable('tight', {
      host: '127.0.0.1',
      meta: { blob: 'x'.repeat(800) },
      discovery: loopbackDiscovery(),
    });
    udpNodes.push(node);
    await expect(node.up()).rejects.toThrow(/over the 1200-byte limit/);
  });
});

describe('delays Node timers cannot keep', () => {
  const MAX_TIMER_MS = 2 ** 31 - 1; // the longest delay a Node timer keeps
  const tooLong = MAX_TIMER_MS + 1;

  it('are refused by the node options, naming the option and the limit', () => {
    const memory = (cluster = new MemoryCluster());
    for (const options of [
      { pickTimeout: tooLong },
      { advertiseInterval: tooLong },
      { nodeTimeout: tooLong },
      { busy: { maxEventLoopDelayMs: tooLong } },
      { busy: { maxEventLoopDelayMs: 100, checkInterval: tooLong } },
    ]) {
      expect(() => memory.node('a', options)).toThrow(KableOptionsError);
      expect(() => memory.node('a', options)).toThrow(/at most 2147483647 ms/);
    }
    // The largest delay a timer keeps is still fine.
    expect(() => memory.node('a', { pickTimeout: MAX_TIMER_MS })).not.toThrow();
  });

  it('are refused by pick() and by a sentinel', async () => {
    cluster = new MemoryCluster();
    const node = await cluster.up('a');
    await expect(node.pick('nobody', { timeout: tooLong })).rejects.toThrow(
      /pick\(\) option "timeout" must be at most 2147483647 ms/,
    );
    expect(() => new KableSentinel(node, { probe: () => true, interval: tooLong })).toThrow(/at most/);
  });
});
