import { describe, expect, it } from '@jest/globals';
import { LeastLatency } from '../../lib/node/least-latency.js';
import {
  EJECT_AFTER,
  EJECT_BASE_MS,
  EJECT_MAX_MS,
  LATENCY_HALF_LIFE_MS,
  OUTLIER_STREAK,
  PROBE_INTERVAL_MS,
  ReplicaHealth,
  SLOW_FOR_MS,
  WARM_UP_REPLIES,
  maxExcluded,
  type Replica,
} from '../../lib/node/replica-health.js';

/** A health view on a fake clock, with `size` replicas per service. */
function setup(size = 3): { health: ReplicaHealth; clock: { now: number } } {
  const clock = { now: 1_000 };
  return {
    // No warm-up: these tests are about the rules (the warm-up has its own test below).
    health: new ReplicaHealth(
      () => size,
      () => clock.now,
      0,
    ),
    clock,
  };
}

/** Three replicas of service "s" that have all answered in `ms`. */
function trio(health: ReplicaHealth, ms = 2): Replica[] {
  const replicas = ['a', 'b', 'c'].map((iid) => health.of(iid, 's'));
  for (const replica of replicas) health.answered(replica, ms);
  return replicas;
}

describe('ReplicaHealth: latency estimate', () => {
  it('takes a slower reply at once (peak) and lets faster ones pull it down with a 10 s half-life', () => {
    const { health, clock } = setup();
    const replica = health.of('a', 's');
    health.answered(replica, 2);
    expect(replica.estimate).toBe(2);
    health.answered(replica, 40);
    expect(replica.estimate).toBe(40);
    // A fast reply one half-life later: halfway from 40 to 2.
    clock.now += LATENCY_HALF_LIFE_MS;
    health.answered(replica, 2);
    expect(replica.estimate).toBeCloseTo(21, 6);
    // A fast reply at the same instant barely moves it: the peak is not forgotten by a burst.
    health.answered(replica, 2);
    expect(replica.estimate).toBeCloseTo(21, 6);
  });

  it('decays towards zero with time for choice by cost, without changing the estimate', () => {
    const { health, clock } = setup();
    const replica = health.of('a', 's');
    health.answered(replica, 8);
    expect(replica.decayed(clock.now + 2 * LATENCY_HALF_LIFE_MS)).toBeCloseTo(2, 6);
    expect(replica.estimate).toBe(8);
  });
});

/**
 * A sequential caller: `rounds` times, each replica in turn answers in its `ms`, the clock moving on by
 * that time. Stops early, returning the calls made, once `until` holds.
 */
function sequential(
  health: ReplicaHealth,
  clock: { now: number },
  replicas: Replica[],
  ms: number[],
  rounds: number,
  until: () => boolean = () => false,
): number {
  let calls = 0;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < replicas.length; i++) {
      clock.now += ms[i];
      health.answered(replicas[i], ms[i]);
      calls++;
      if (until()) return calls;
    }
  }
  return calls;
}

describe('ReplicaHealth: warm-up', () => {
  it('neither judges nor counts a replica’s first replies: a fresh process is slow at first', () => {
    const clock = { now: 1_000 };
    const health = new ReplicaHealth(
      () => 3,
      () => clock.now,
    );
    const [a, b, c] = ['a', 'b', 'c'].map((iid) => health.of(iid, 's'));
    for (let i = 0; i < WARM_UP_REPLIES; i++) for (const warm of [a, b]) health.answered(warm, 2);
    for (const warm of [a, b]) health.answered(warm, 2);
    // The fresh one: its first replies are ten times slower, then as fast as the others.
    for (let i = 0; i < WARM_UP_REPLIES; i++) health.answered(c, 20);
    expect(c.outlier).toBe(false);
    expect(c.typical).toBe(0);
    health.answered(c, 2);
    expect(c.typical).toBe(2);
  });

  it('finds a replica 5x slower (10 ms beside 2 ms) within 200 calls of a sequential caller, warm-up included', () => {
    const clock = { now: 1_000 };
    const health = new ReplicaHealth(
      () => 3,
      () => clock.now,
    );
    const replicas = ['a', 'b', 'c'].map((iid) => health.of(iid, 's'));
    const c = replicas[2];
    const calls = sequential(health, clock, replicas, [2, 2, 10], 1_000, () => c.outlier);
    expect(c.outlier).toBe(true);
    // Not before its typical time had been over the bar for the span (the first judged reply of c).
    expect(calls).toBeGreaterThanOrEqual(3 * (WARM_UP_REPLIES + Math.ceil(SLOW_FOR_MS / 14)));
    expect(calls).toBeLessThanOrEqual(200);
  });
});

describe('ReplicaHealth: latency outliers', () => {
  it('makes a replica 5x slower an outlier once its typical time has been over the bar for 500 ms, and bumps the version', () => {
    const { health, clock } = setup();
    const replicas = trio(health, 2);
    const c = replicas[2];
    let since = Number.NaN;
    let version = health.version;
    for (let round = 0; round < 100 && !c.outlier; round++) {
      version = health.version;
      sequential(health, clock, replicas, [2, 2, 10], 1);
      if (Number.isNaN(since)) since = c.slowSince;
      // Under the bar at first (its typical time climbs from 2 ms), then over it: out only after the span.
      expect(c.outlier).toBe(clock.now - since >= SLOW_FOR_MS);
    }
    expect(c.outlier).toBe(true);
    expect(c.excluded).toBe(true);
    expect(health.version).toBeGreaterThan(version);
    expect(health.stats()).toMatchObject({ latencyOutliers: 1, latencyOutlierEvents: 1 });
    expect(health.excluded()).toEqual([
      { iid: 'c', reason: 'latency', estimateMs: 10, typicalMs: expect.any(Number) },
    ]);
  });

  it('finds a replica whose typical time hovers around 3x under load, as long as it stays over 2x', () => {
    const { health, clock } = setup();
    const [a, b, c] = trio(health, 3);
    // Many replies a second, c's 14, 14, 14, 4, 4, 4 ms over and over: 3x slower on average, its typical
    // time crossing 3x the others' (9 ms) both ways every six replies but never falling to 2x (6 ms).
    let crossedBack = 0;
    for (let i = 0; i < 1_200 && !c.outlier; i++) {
      clock.now += 1;
      health.answered(a, 3);
      health.answered(b, 3);
      const wasOver = c.typical > 9;
      health.answered(c, i % 6 < 3 ? 14 : 4);
      if (wasOver && c.typical <= 9) crossedBack++;
    }
    expect(crossedBack).toBeGreaterThan(10);
    expect(c.outlier).toBe(true);
  });

  it('never marks a replica slow below the 5 ms floor, nor below 3x the others’ median', () => {
    const { health, clock } = setup();
    // 4 ms is 4x the median but under the floor.
    sequential(health, clock, trio(health, 1), [1, 1, 4], 1_000);
    expect(health.peek('c')!.outlier).toBe(false);
    const other = setup();
    // 11 ms is over the floor but under 3x the median (12 ms).
    sequential(other.health, other.clock, trio(other.health, 4), [4, 4, 11], 1_000);
    expect(other.health.peek('c')!.outlier).toBe(false);
  });

  it('forgives one slow reply (a pause) between fast ones', () => {
    const { health, clock } = setup();
    const [a, b, c] = trio(health, 2);
    for (let i = 0; i < 1_000; i++) {
      sequential(health, clock, [a, b], [2, 2], 1);
      clock.now += 2;
      health.answered(c, i % 2 === 0 ? 50 : 2);
    }
    expect(c.outlier).toBe(false);
  });

  it('does not leave out a replica starved of CPU now and then: each stall’s late replies arrive together', () => {
    const { health, clock } = setup();
    const replicas = trio(health, 2);
    const c = replicas[2];
    // A caller with requests in flight: each replica answers one a ms, in 2 ms. Every second, c is
    // stalled for 300 ms; when it ends, the 300 requests it held answer at once (the oldest 300 ms late).
    // Ten seconds of that: each stall is 3 (and 300) slow replies in a row, never 500 ms of slowness.
    for (let second = 0; second < 10; second++) {
      for (let ms = 0; ms < 1_000; ms++) {
        clock.now += 1;
        health.answered(replicas[0], 2);
        health.answered(replicas[1], 2);
        if (ms < 300) continue;
        if (ms === 300) for (let late = 300; late > 0; late--) health.answered(c, late + 2);
        health.answered(c, 2);
      }
    }
    expect(health.stats().latencyOutlierEvents).toBe(0);
  });

  it('judges a replica only beside two others past warm-up: never in a service of two', () => {
    const { health, clock } = setup(2);
    const a = health.of('a', 's');
    const b = health.of('b', 's');
    health.answered(a, 2);
    sequential(health, clock, [a, b], [2, 10], 1_000);
    expect(b.outlier).toBe(false);
    // Three, but the third has not answered yet (a fresh replica warming up): not judged either.
    const three = setup(3);
    const [x, y] = [three.health.of('x', 's'), three.health.of('y', 's'), three.health.of('z', 's')];
    sequential(three.health, three.clock, [x, y], [2, 10], 1_000);
    expect(y.outlier).toBe(false);
  });

  it('probes an outlier once per interval, and two fast probe replies in a row heal it', () => {
    const { health, clock } = setup();
    const replicas = trio(health, 2);
    const c = replicas[2];
    sequential(health, clock, replicas, [2, 2, 10], 1_000, () => c.outlier);
    expect(health.probe(c)).toBe(false);
    clock.now += PROBE_INTERVAL_MS;
    expect(health.probe(c)).toBe(true);
    expect(health.probe(c)).toBe(false);
    // Still slow: stays out.
    health.answered(c, 10);
    expect(c.outlier).toBe(true);
    clock.now += PROBE_INTERVAL_MS;
    expect(health.probe(c)).toBe(true);
    health.answered(c, 2);
    expect(c.outlier).toBe(true);
    // A slow one in between starts the count again.
    clock.now += PROBE_INTERVAL_MS;
    expect(health.probe(c)).toBe(true);
    health.answered(c, 10);
    clock.now += PROBE_INTERVAL_MS;
    expect(health.probe(c)).toBe(true);
    health.answered(c, 2);
    expect(c.outlier).toBe(true);
    clock.now += PROBE_INTERVAL_MS;
    expect(health.probe(c)).toBe(true);
    const version = health.version;
    health.answered(c, 2);
    expect(c.outlier).toBe(false);
    expect(health.version).toBeGreaterThan(version);
    expect(health.stats()).toMatchObject({ latencyOutliers: 0, probeRequests: 5 });
    // Back with its typical time from the last probe: one more slow reply does not put it out again.
    expect(c.typical).toBe(2);
    sequential(health, clock, replicas, [2, 2, 10], OUTLIER_STREAK);
    expect(c.outlier).toBe(false);
  });

  it('heals an outlier only with replies at most 2x the reference (hysteresis), not ones just under 3x', () => {
    const { health, clock } = setup();
    const replicas = trio(health, 4);
    const c = replicas[2];
    sequential(health, clock, replicas, [4, 4, 20], 1_000, () => c.outlier);
    expect(c.outlier).toBe(true);
    health.answered(c, 10);
    health.answered(c, 10);
    expect(c.outlier).toBe(true);
    health.answered(c, 8);
    health.answered(c, 8);
    expect(c.outlier).toBe(false);
  });
});

describe('ReplicaHealth: failure ejection', () => {
  it('ejects after 5 consecutive failures; an answer in between resets the count', () => {
    const { health } = setup();
    const [a] = trio(health);
    for (let i = 1; i < EJECT_AFTER; i++) health.failed(a);
    health.answered(a, 2);
    for (let i = 1; i < EJECT_AFTER; i++) health.failed(a);
    expect(a.ejected).toBe(false);
    const version = health.version;
    health.failed(a);
    expect(a.ejected).toBe(true);
    expect(health.version).toBeGreaterThan(version);
    expect(health.stats()).toMatchObject({ ejectedReplicas: 1, ejections: 1 });
    expect(health.excluded()).toEqual([{ iid: 'a', reason: 'failures', estimateMs: 2, typicalMs: 2 }]);
  });

  it('leaves out at most a third of a service, outliers and ejected together (one of 2 to 5, none of 1)', () => {
    expect([1, 2, 3, 5, 6, 9, 10].map(maxExcluded)).toEqual([0, 1, 1, 1, 2, 3, 3]);
    const { health } = setup(3);
    const [a, b] = trio(health);
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(a);
    for (let i = 0; i < 3 * EJECT_AFTER; i++) health.failed(b);
    expect(a.ejected).toBe(true);
    expect(b.ejected).toBe(false);
    const single = setup(1);
    const only = single.health.of('x', 'solo');
    for (let i = 0; i < 3 * EJECT_AFTER; i++) single.health.failed(only);
    expect(only.ejected).toBe(false);
  });

  it('never leaves out the working replicas when the caller itself stalls (every reply slow at once)', () => {
    const { health, clock } = setup(3);
    const [a, b, c] = trio(health);
    // The caller's own pauses make the replies of a and b look slow for a whole second; c (stalled)
    // answers nothing. Only one of them may be left out, so a stalled c never gets everything.
    sequential(health, clock, [a, b], [40, 40], 25);
    expect([a.outlier, b.outlier, c.outlier]).toEqual([true, false, false]);
    // And a failing replica is not ejected beside an outlier in a service of three.
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(c);
    expect(c.ejected).toBe(false);
  });

  it('sends nothing during the ejection, then one probe per interval; a failed probe ejects for longer, capped', () => {
    const { health, clock } = setup();
    const [a] = trio(health);
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(a);
    const start = clock.now;
    expect(a.ejectedUntil - start).toBe(EJECT_BASE_MS);
    clock.now = start + EJECT_BASE_MS - 1;
    expect(health.probe(a)).toBe(false);
    clock.now = start + EJECT_BASE_MS;
    expect(health.probe(a)).toBe(true);
    health.failed(a);
    expect(a.ejected).toBe(true);
    expect(a.ejectedUntil - clock.now).toBe(2 * EJECT_BASE_MS);
    expect(health.stats().ejections).toBe(2);
    // A late failure of a request sent before the ejection does not lengthen it.
    const until = a.ejectedUntil;
    health.failed(a);
    expect(a.ejectedUntil).toBe(until);
    for (let n = 3; n <= 20; n++) {
      clock.now = a.ejectedUntil;
      health.failed(a);
    }
    expect(a.ejectedUntil - clock.now).toBe(EJECT_MAX_MS);
  });

  it('a successful probe ends the ejection, and the next ejection starts from the base time again', () => {
    const { health, clock } = setup();
    const [a] = trio(health);
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(a);
    clock.now = a.ejectedUntil;
    expect(health.probe(a)).toBe(true);
    health.answered(a, 2);
    expect(a.ejected).toBe(false);
    expect(a.excluded).toBe(false);
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(a);
    expect(a.ejectedUntil - clock.now).toBe(EJECT_BASE_MS);
  });

  it('ends the ejection of a replica that answers PINGs again after a hang (its timeouts were the hang)', () => {
    const { health } = setup();
    const [a] = trio(health);
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(a);
    expect(a.ejected).toBe(true);
    const version = health.version;
    health.revived('a');
    expect(a.ejected).toBe(false);
    expect(health.version).toBeGreaterThan(version);
    health.revived('unknown');
  });

  it('forgets a replica that left; its ejection no longer counts against the third', () => {
    const { health } = setup();
    const [a, b] = trio(health);
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(a);
    health.forget('a');
    for (let i = 0; i < EJECT_AFTER; i++) health.failed(b);
    expect(b.ejected).toBe(true);
    expect(health.peek('a')).toBeUndefined();
  });
});

describe('LeastLatency', () => {
  it('picks the cheaper of two distinct random candidates', () => {
    const cost = new Map([
      ['a', 5],
      ['b', 1],
      ['c', 3],
    ]);
    const draws = [0, 0, 0.99, 0.99, 0.5, 0.5];
    let i = 0;
    const balancer = new LeastLatency<string>(
      (c) => cost.get(c)!,
      () => draws[i++],
    );
    // Draws (a, then b of the others) -> b; (c, then b of a,b) -> b; (b, then c of a,c) -> b.
    expect([
      balancer.select(['a', 'b', 'c']),
      balancer.select(['a', 'b', 'c']),
      balancer.select(['a', 'b', 'c']),
    ]).toEqual(['b', 'b', 'b']);
    expect(new LeastLatency<string>(() => 0).select(['only'])).toBe('only');
    expect(new LeastLatency<string>(() => 0).select([])).toBeUndefined();
  });
});
