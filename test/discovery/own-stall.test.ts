import { afterEach, describe, expect, it } from '@jest/globals';
import { kable } from '../../lib/kable.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import { waitForEvent } from '../support/events.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

const FIXTURE = 'test/discovery/fixtures/node-process.ts';
let child: ChildFixture | undefined;
let watcher: KableNode | undefined;

afterEach(async () => {
  if (child?.child.exitCode === null) child.child.kill('SIGKILL');
  await watcher?.down();
});

/** Blocks this process's event loop, as a long synchronous task or a GC pause would. */
function stallFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy
  }
}

describe("a node's own stalled event loop", () => {
  it('does not evict peers that kept advertising meanwhile (real UDP, peer in another process)', async () => {
    const discovery = loopbackDiscovery(100); // nodeTimeout 350 ms
    watcher = kable('watcher', { host: '127.0.0.1', discovery });
    await watcher.up();
    const seen = waitForEvent(watcher, 'peer:added', (peer: any) => peer.id === 'peer');
    child = runFixture(FIXTURE, ['peer', JSON.stringify({ host: '127.0.0.1', discovery })]);
    const { iid } = (await child.ready) as { iid: string };
    await seen;
    const removals: string[] = [];
    watcher.on('peer:removed', (peer) => removals.push(peer.id));

    // In a check-phase callback, as a long task would run from a socket's or a setImmediate's callback:
    // the timers (the sweep) come next, before the sockets are polled again.
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        stallFor(3 * watcher!.nodeTimeout);
        resolve();
      }),
    );
    // The peer's next state change, heard after the adverts it sent during the stall: by then the
    // overdue sweep has run.
    const changed = waitForEvent(watcher, 'peer:state', (peer: any) => peer.iid === iid);
    child.send('doing something');
    await changed;

    expect(removals).toEqual([]);
    expect(watcher.stats().ownStalls).toBeGreaterThanOrEqual(1);
    expect(watcher.peer(iid)?.state).toBe('DOING_SOMETHING');
  });
});
