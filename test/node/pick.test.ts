import { afterEach, describe, expect, it } from '@jest/globals';
import { KablePickTimeoutError } from '../../lib/node/errors.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { waitForEvent } from '../support/events.js';
import { MemoryCluster } from '../support/memory-cluster.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

describe('pick()', () => {
  it('returns a known RUNNING node at once', async () => {
    cluster = new MemoryCluster();
    const client = await cluster.up('gateway');
    const bar = await cluster.up('bar');
    const peer = await client.pick('bar', { timeout: 5000 });
    expect(peer.iid).toBe(bar.iid);
  });

  it('waits for a node that is not there yet', async () => {
    cluster = new MemoryCluster();
    const client = await cluster.up('gateway');
    const waiting = client.pick('late', { timeout: 5000 });
    expect(client.stats().pickWaiters).toBe(1);
    const late = await cluster.up('late');
    expect((await waiting).iid).toBe(late.iid);
    expect(client.stats().pickWaiters).toBe(0);
  });

  it('a node that is up but not RUNNING does not satisfy a waiter until it runs', async () => {
    cluster = new MemoryCluster();
    const client = await cluster.up('gateway');
    const waiting = client.pick('slow', { timeout: 5000 });
    let settled = false;
    void waiting.then(() => (settled = true));
    const slow = cluster.node('slow');
    const seen = (state: string) =>
      waitForEvent(client, state === 'UP' ? 'peer:added' : 'peer:state', (p: PeerRecord) => {
        return p.iid === slow.iid && p.state === state;
      });
    // The client learns of the node while it is UP, then DOING_SOMETHING: neither serves the waiter.
    const up = seen('UP');
    await slow.up(false);
    await up;
    await new Promise((resolve) => setImmediate(resolve));
    expect({ settled, waiters: client.stats().pickWaiters }).toEqual({ settled: false, waiters: 1 });
    const doing = seen('DOING_SOMETHING');
    slow.doing('loading');
    await doing;
    await new Promise((resolve) => setImmediate(resolve));
    expect({ settled, waiters: client.stats().pickWaiters }).toEqual({ settled: false, waiters: 1 });
    slow.start();
    expect((await waiting).iid).toBe(slow.iid);
    expect(client.stats().pickWaiters).toBe(0);
  });

  it('times out with KablePickTimeoutError and the waiter is gone', async () => {
    cluster = new MemoryCluster();
    const client = await cluster.up('gateway');
    const error = await client.pick('nobody', { timeout: 30 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KablePickTimeoutError);
    expect(error).toMatchObject({ code: 'KABLE_PICK_TIMEOUT', serviceId: 'nobody' });
    expect(client.stats().pickWaiters).toBe(0);
  });

  it('aborts with the signal and the waiter is gone', async () => {
    cluster = new MemoryCluster();
    const client = await cluster.up('gateway');
    const controller = new AbortController();
    const waiting = client.pick('nobody', { signal: controller.signal });
    expect(client.stats().pickWaiters).toBe(1);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(client.stats().pickWaiters).toBe(0);
    await expect(client.pick('nobody', { signal: controller.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
  });

  it('refuses waiters beyond maxPickWaiters at once', async () => {
    cluster = new MemoryCluster();
    const client = await cluster.up('gateway', { maxPickWaiters: 2 });
    const controller = new AbortController();
    const first = client.pick('x', { signal: controller.signal }).catch((e: unknown) => e);
    const second = client.pick('y', { signal: controller.signal }).catch((e: unknown) => e);
    await expect(client.pick('z')).rejects.toMatchObject({ code: 'KABLE_TOO_MANY_WAITERS' });
    controller.abort();
    await Promise.all([first, second]);
    expect(client.stats().pickWaiters).toBe(0);
  });

  it('rejects waiters when the node goes down', async () => {
    cluster = new MemoryCluster();
    const client = await cluster.up('gateway');
    const waiting = client.pick('nobody', { timeout: 60_000 });
    await client.down();
    await expect(waiting).rejects.toMatchObject({ code: 'KABLE_NODE_DOWN' });
  });
});
