import { describe, expect, it } from '@jest/globals';
import { LoadAwareRoundRobin, SKIP_FACTOR, SKIP_MARGIN } from '../../lib/node/load-aware-round-robin.js';

describe('LoadAwareRoundRobin', () => {
  it('is plain round robin while loads are close', () => {
    const load = new Map([
      ['a', 5],
      ['b', 6],
      ['c', 4],
    ]);
    const balancer = new LoadAwareRoundRobin<string>((c) => load.get(c)!);
    const picks = Array.from({ length: 9 }, () => balancer.select(['a', 'b', 'c']));
    expect(picks).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
    expect(balancer.skips).toBe(0);
  });

  it('passes over a candidate far above the others, and the rest share its turns evenly', () => {
    const load = new Map([
      ['a', 0],
      ['b', 3],
      ['c', 3],
    ]);
    const balancer = new LoadAwareRoundRobin<string>((c) => load.get(c)!);
    // A stalled replica: each request it takes stays in flight; the others answer at once.
    const served = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const pick = balancer.select(['a', 'b', 'c'])!;
      served.set(pick, (served.get(pick) ?? 0) + 1);
      if (pick === 'a') load.set('a', load.get('a')! + 1);
    }
    // 'a' collects requests only up to the rule's bound: 1.25 × 3 + 2 = 5.75, so 6.
    expect(load.get('a')).toBe(Math.floor(SKIP_FACTOR * 3 + SKIP_MARGIN) + 1);
    expect(Math.abs(served.get('b')! - served.get('c')!)).toBeLessThanOrEqual(1);
    // Every other pick is its turn, passed over.
    expect(balancer.skips).toBeGreaterThan(130);
  });

  it('caps a stalled replica of a 20-lane closed loop below half the requests in flight', () => {
    // Closed loop: 20 requests always in flight; the healthy two answer, the stalled one keeps all it gets.
    const inFlight = new Map([
      ['a', 0],
      ['b', 0],
      ['c', 0],
    ]);
    const balancer = new LoadAwareRoundRobin<string>((c) => inFlight.get(c)!);
    const send = () => {
      const pick = balancer.select(['a', 'b', 'c'])!;
      inFlight.set(pick, inFlight.get(pick)! + 1);
    };
    for (let i = 0; i < 20; i++) send();
    for (let i = 0; i < 10_000; i++) {
      const healthy = i % 2 === 0 ? 'b' : 'c';
      if (inFlight.get(healthy)! === 0) continue;
      inFlight.set(healthy, inFlight.get(healthy)! - 1);
      send();
    }
    expect(inFlight.get('a')).toBeLessThanOrEqual(9);
    expect(inFlight.get('a')! + inFlight.get('b')! + inFlight.get('c')!).toBe(20);
  });

  it('keeps one candidate, and never returns nothing while there are candidates', () => {
    const balancer = new LoadAwareRoundRobin<string>(() => 1000);
    expect(balancer.select(['only'])).toBe('only');
    expect(balancer.select([])).toBeUndefined();
    const equal = new LoadAwareRoundRobin<string>(() => 50);
    expect([equal.select(['a', 'b']), equal.select(['a', 'b'])]).toEqual(['a', 'b']);
  });
});
