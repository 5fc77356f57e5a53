import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import type { PatternCatalog } from '../../lib/nest/pattern-catalog.js';
import { PatternRouter } from '../../lib/nest/pattern-router.js';

// The router's avoidance of replicas that refused or could not be reached, on fake timers: a node core
// and a catalog reduced to what the router reads.

function peer(iid: string, id = 'math'): PeerRecord {
  return {
    iid,
    id,
    state: 'RUNNING',
    patterns: `digest-${iid}`,
    self: false,
    compatible: true,
  } as unknown as PeerRecord;
}

function cluster(peers: PeerRecord[], handles: boolean) {
  const node = Object.assign(new EventEmitter(), {
    version: 0,
    runningNodes: () => peers,
    running: (id: string) => peers.filter((p) => p.id === id),
  });
  const catalog = Object.assign(new EventEmitter(), {
    version: 0,
    handles: () => handles,
    isKnown: () => true,
  });
  return { node: node as unknown as KableNode, catalog: catalog as unknown as PatternCatalog };
}

const routers: PatternRouter[] = [];
function router(peers: PeerRecord[], options: { handles?: boolean; target?: string } = {}): PatternRouter {
  const { node, catalog } = cluster(peers, options.handles ?? true);
  const made = new PatternRouter(node, catalog, options.target, 100);
  routers.push(made);
  return made;
}

beforeEach(() => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
});
afterEach(() => {
  for (const made of routers.splice(0)) made.dispose();
  jest.restoreAllMocks();
  jest.useRealTimers();
});

/** Node's timers may fire up to a millisecond before the time they were set for: this one always does. */
function timersFireEarly(): void {
  const setTimer = globalThis.setTimeout;
  jest
    .spyOn(globalThis, 'setTimeout')
    .mockImplementation(((callback: () => void, ms?: number) =>
      setTimer(callback, Math.max(1, (ms ?? 0) - 1))) as unknown as typeof setTimeout);
}

describe('avoided replicas', () => {
  it('come back when the avoidance ends, even if its timer fires a millisecond early', async () => {
    timersFireEarly();
    const only = peer('a');
    const routes = router([only]);
    expect(routes.next('add')).toBe(only);
    routes.avoid('a', 1000);
    expect(routes.next('add')).toBeUndefined();
    // A request waiting for a node is woken when the avoidance ends: no advert, no other change.
    let found: PeerRecord | undefined;
    void routes.waitFor(() => routes.next('add'), 'pattern "add"', 60_000).then((p) => (found = p));
    await jest.advanceTimersByTimeAsync(999);
    expect(found).toBeUndefined();
    expect(routes.next('add')).toBeUndefined();
    await jest.advanceTimersByTimeAsync(1);
    expect(found).toBe(only);
    expect(routes.next('add')).toBe(only);
    expect(routes.avoidedNodes()).toEqual([]);
    // And for good: long after, still in the rotation.
    await jest.advanceTimersByTimeAsync(60_000);
    expect(routes.next('add')).toBe(only);
  });

  it('keep one timer for the whole client, not one per failed request', async () => {
    const replicas = Array.from({ length: 50 }, (_, i) => peer(`r${i}`));
    const routes = router(replicas);
    const before = jest.getTimerCount();
    for (let i = 0; i < 200; i++) {
      routes.avoid(replicas[i % 50].iid, 1000);
      await jest.advanceTimersByTimeAsync(1);
    }
    expect(jest.getTimerCount() - before).toBe(1);
    expect(routes.candidates('add', 'messages')).toEqual([]);
    // The last avoidance was set at 200 ms: every one has ended by 1,200 ms, and nothing is left armed.
    await jest.advanceTimersByTimeAsync(1000);
    expect(routes.candidates('add', 'messages')).toEqual(replicas);
    expect(jest.getTimerCount() - before).toBe(0);
  });

  it('are skipped by a target request for a pattern nobody handles, until the avoidance ends', async () => {
    const [a, b] = [peer('a'), peer('b')];
    const routes = router([a, b], { handles: false, target: 'math' });
    routes.avoid('a', 1000);
    // Retries of a request that A just failed go to B, not straight back to A.
    const picks = Array.from({ length: 6 }, () => routes.targetWithoutHandler('add')?.iid);
    expect(picks).toEqual(['b', 'b', 'b', 'b', 'b', 'b']);
    await jest.advanceTimersByTimeAsync(1000);
    const after = new Set(Array.from({ length: 4 }, () => routes.targetWithoutHandler('add')?.iid));
    expect(after).toEqual(new Set(['a', 'b']));
  });
});
