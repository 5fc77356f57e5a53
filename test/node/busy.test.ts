import { afterEach, describe, expect, it } from '@jest/globals';
import { busyStateOf } from '../../lib/node/busy-state.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitForEvent } from '../support/events.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Spinning on purpose: this is the overload under test.
  }
}

describe('busy state', () => {
  it('stays DOING_SOMETHING until the last of several holds is released', async () => {
    cluster = new MemoryCluster();
    const node = await cluster.up('worker');
    const busy = busyStateOf(node);
    const first = busy.hold('indexing');
    const second = busy.hold('indexing');
    expect(node.state).toMatchObject({ state: 'DOING_SOMETHING', reason: 'indexing' });
    first();
    first();
    expect(node.state.state).toBe('DOING_SOMETHING');
    second();
    expect(node.state.state).toBe('RUNNING');
  });

  it('leaves a node stopped meanwhile stopped', async () => {
    cluster = new MemoryCluster();
    const node = await cluster.up('worker');
    const release = busyStateOf(node).hold('indexing');
    node.stop('maintenance');
    release();
    expect(node.state).toMatchObject({ state: 'STOPPED', reason: 'maintenance' });
  });

  it('does not start a node that was not RUNNING when the hold began', async () => {
    cluster = new MemoryCluster();
    const node = await cluster.up('worker', {});
    node.stop('paused');
    const release = busyStateOf(node).hold('indexing');
    expect(node.state.state).toBe('STOPPED');
    release();
    expect(node.state.state).toBe('STOPPED');
  });
});

describe('overload detection', () => {
  it('turns a lagging node DOING_SOMETHING, seen by its peers, and RUNNING again once it recovers', async () => {
    cluster = new MemoryCluster();
    const watcher = await cluster.up('watcher');
    const node = await cluster.up('worker', { busy: { maxEventLoopDelayMs: 40, checkInterval: 20 } });
    await waitForEvent(watcher, 'peer:added', (peer: { iid: string }) => peer.iid === node.iid);
    // Every overload episode the node itself went through, with how long it lasted: on a loaded machine
    // there may be more than the one this test causes, and each must be counted.
    const episodes: Array<{ began: number; ended?: number }> = [];
    node.on('state', (status, previous) => {
      if (status.state === 'DOING_SOMETHING' && status.reason?.startsWith('overloaded'))
        episodes.push({ began: performance.now() });
      else if (previous.reason?.startsWith('overloaded'))
        episodes[episodes.length - 1].ended = performance.now();
    });
    const busy = waitForEvent(
      watcher,
      'peer:state',
      (peer: { iid: string; state: string }) => peer.iid === node.iid && peer.state === 'DOING_SOMETHING',
    );
    blockEventLoop(150);
    const [seen] = (await busy) as [{ reason?: string }];
    expect(seen.reason).toMatch(/^overloaded: event loop delay \d+ ms$/);
    await waitForEvent(
      watcher,
      'peer:state',
      (peer: { iid: string; state: string }) => peer.iid === node.iid && peer.state === 'RUNNING',
    );
    expect(episodes.length).toBeGreaterThanOrEqual(1);
    expect(node.stats().overloads).toBe(episodes.length);
    // Hysteresis: back to RUNNING only after recoverChecks (2) calm checks of 20 ms (one would be 20 ms;
    // an interval can run short when the check before it ran late, never by half).
    expect(episodes[0].ended).toBeDefined();
    for (const { began, ended } of episodes)
      if (ended !== undefined) expect(ended - began).toBeGreaterThan(1.5 * 20);
  });

  it('rejects a bad busy option at construction', () => {
    cluster = new MemoryCluster();
    expect(() => cluster.node('worker', { busy: { maxEventLoopDelayMs: 0 } })).toThrow(
      /busy.maxEventLoopDelayMs/,
    );
    expect(() => cluster.node('worker', { busy: { maxEventLoopDelayMs: 10, recoverRatio: 2 } })).toThrow(
      /busy.recoverRatio/,
    );
  });
});
