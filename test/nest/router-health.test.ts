import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import {
  EJECT_AFTER,
  EJECT_BASE_MS,
  OUTLIER_STREAK,
  PROBE_INTERVAL_MS,
  ReplicaHealth,
  SLOW_FOR_MS,
} from '../../lib/node/replica-health.js';
import type { PatternCatalog } from '../../lib/nest/pattern-catalog.js';
import { PatternRouter } from '../../lib/nest/pattern-router.js';

// The router's use of replica health, on an injected clock: a node core and a catalog reduced to what
// the router reads, as in pattern-router.test.ts.

function peer(iid: string): PeerRecord {
  return {
    iid,
    id: 'math',
    state: 'RUNNING',
    patterns: `digest-${iid}`,
    self: false,
    compatible: true,
  } as unknown as PeerRecord;
}

function setup(count = 3) {
  const peers = Array.from({ length: count }, (_, i) => peer(String.fromCharCode(97 + i)));
  const node = Object.assign(new EventEmitter(), {
    version: 0,
    runningNodes: () => peers,
    running: () => peers,
  });
  const catalog = Object.assign(new EventEmitter(), { version: 0, handles: () => true, isKnown: () => true });
  const clock = { now: 1_000 };
  const health = new ReplicaHealth(
    () => peers.length,
    () => clock.now,
    0,
  );
  const router = new PatternRouter(
    node as unknown as KableNode,
    catalog as unknown as PatternCatalog,
    undefined,
    100,
    () => 0,
    health,
  );
  /** Sends `n` requests; each replica answers in its `ms`; returns the count per replica. */
  const run = (n: number, ms: Record<string, number>, fails: string[] = []): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const chosen = router.next('add')!;
      counts[chosen.iid] = (counts[chosen.iid] ?? 0) + 1;
      const replica = health.of(chosen.iid, chosen.id);
      if (fails.includes(chosen.iid)) health.failed(replica);
      else health.answered(replica, ms[chosen.iid]);
      clock.now += 1;
    }
    return counts;
  };
  return { peers, router, health, clock, run };
}

describe('PatternRouter with replica health', () => {
  it('keeps exact round robin over equal replicas', () => {
    const { run } = setup();
    expect(run(3000, { a: 2, b: 2.2, c: 1.9 })).toEqual({ a: 1000, b: 1000, c: 1000 });
  });

  it('keeps exact round robin over equal replicas one of which stalls for a moment now and then', () => {
    const { run } = setup();
    const counts = { a: 0, b: 0, c: 0 } as Record<string, number>;
    // 3,000 requests 1 ms apart; every 600th, c answers 300 ms late three times in a row (a CPU stall).
    for (let block = 0; block < 5; block++) {
      for (const [iid, n] of Object.entries(run(591, { a: 2, b: 2, c: 2 }))) counts[iid] += n;
      for (const [iid, n] of Object.entries(run(9, { a: 2, b: 2, c: 300 }))) counts[iid] += n;
    }
    expect(counts).toEqual({ a: 1000, b: 1000, c: 1000 });
  });

  it('sends a latency outlier one probe per interval, and takes it back in turn after two fast probes', () => {
    const { run, clock, router, health } = setup();
    // 1 ms apart: c's typical time is over the bar from its first slow replies; 500 ms later it is out.
    run(3 * (SLOW_FOR_MS / 3 + 2 * OUTLIER_STREAK), { a: 2, b: 2, c: 10 });
    expect(health.peek('c')!.outlier).toBe(true);
    // 3,000 requests over 3 s (1 ms apart): 3 probes; the others share the rest exactly.
    const counts = run(3000, { a: 2, b: 2, c: 10 });
    expect(counts.c).toBe(3000 / PROBE_INTERVAL_MS);
    expect(Math.abs(counts.a - counts.b)).toBeLessThanOrEqual(1);
    expect(router.candidates('add', 'messages').map((p) => p.iid)).toEqual(['a', 'b', 'c']);
    for (let probe = 0; probe < 2; probe++) {
      clock.now += PROBE_INTERVAL_MS;
      expect(run(1, { a: 2, b: 2, c: 2 })).toEqual({ c: 1 });
    }
    const healed = run(300, { a: 2, b: 2, c: 2 });
    for (const iid of ['a', 'b', 'c']) expect(Math.abs(healed[iid] - 100)).toBeLessThanOrEqual(1);
  });

  it('ejects a failing replica after 5 failures, no more than one of three, and probes it back after 30 s', () => {
    const { run, clock, health } = setup();
    const first = run(30, { a: 2, b: 2 }, ['b', 'c']);
    // b fails its 5th on the 14th request and is ejected; c fails on, as only a third may be ejected.
    expect(first).toEqual({ a: 13, b: EJECT_AFTER, c: 12 });
    expect(health.stats()).toMatchObject({ ejectedReplicas: 1 });
    clock.now += EJECT_BASE_MS;
    // The probe goes to b, which answers now: back in rotation.
    const after = run(300, { a: 2, b: 2, c: 2 });
    expect(health.peek('b')!.ejected).toBe(false);
    expect(Math.abs(after.b - 100)).toBeLessThanOrEqual(1);
  });
});
