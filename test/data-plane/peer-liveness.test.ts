import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { LIVENESS_DEFAULTS, PeerLiveness } from '../../lib/data-plane/peer-liveness.js';

/** A detector with the default timings over a fake peer: what it pinged and what it concluded. */
function watch(outstanding = 1) {
  const seen = { pings: [] as number[], changes: [] as boolean[], outstanding };
  const liveness = new PeerLiveness(LIVENESS_DEFAULTS, {
    outstanding: () => seen.outstanding,
    ping: () => seen.pings.push(Date.now()),
    changed: (responsive) => seen.changes.push(responsive),
  });
  return { liveness, seen };
}

/** Real setImmediate: the verdict waits for one more poll of the sockets, as in production. */
const nextPoll = () => new Promise((resolve) => setImmediate(resolve));

describe('PeerLiveness', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'clearImmediate', 'nextTick', 'queueMicrotask'] });
    jest.setSystemTime(0);
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('never pings an idle connection', () => {
    const { liveness, seen } = watch(0);
    liveness.waiting();
    jest.advanceTimersByTime(10_000);
    expect(seen.pings).toEqual([]);
    expect(liveness.responsive).toBe(true);
    liveness.stop();
  });

  it('never pings a peer that keeps answering', () => {
    const { liveness, seen } = watch();
    liveness.waiting();
    for (let i = 0; i < 100; i++) {
      jest.advanceTimersByTime(200);
      liveness.heard();
    }
    expect(seen.pings).toEqual([]);
    liveness.stop();
  });

  it('pings after 250 ms of silence, calls the peer unresponsive 500 ms later, and back when it speaks', async () => {
    const { liveness, seen } = watch();
    liveness.waiting();
    jest.advanceTimersByTime(249);
    expect(seen.pings).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(seen.pings).toEqual([250]);
    jest.advanceTimersByTime(499);
    await nextPoll();
    expect(seen.changes).toEqual([]);
    jest.advanceTimersByTime(1);
    await nextPoll();
    expect(seen.changes).toEqual([false]);
    expect(liveness.responsive).toBe(false);
    expect(liveness.lapses).toBe(1);
    // Still pinged while unresponsive, even with nothing outstanding: its answer brings it back.
    seen.outstanding = 0;
    expect(seen.pings).toEqual([250, 750]);
    for (let i = 0; i < 3; i++) {
      jest.advanceTimersByTime(500);
      await nextPoll();
    }
    expect(seen.pings).toEqual([250, 750, 1250, 1750, 2250]);
    expect(seen.changes).toEqual([false]);
    liveness.heard();
    expect(seen.changes).toEqual([false, true]);
    expect(liveness.responsive).toBe(true);
    // Idle again: no more pings.
    jest.advanceTimersByTime(5000);
    await nextPoll();
    expect(seen.pings).toHaveLength(5);
    liveness.stop();
  });

  it('a PONG in time keeps the peer responsive, and silence is watched again from then', async () => {
    const { liveness, seen } = watch();
    liveness.waiting();
    jest.advanceTimersByTime(250);
    expect(seen.pings).toEqual([250]);
    jest.advanceTimersByTime(400);
    liveness.heard(); // the PONG, at 650
    jest.advanceTimersByTime(249);
    expect(seen.pings).toEqual([250]);
    jest.advanceTimersByTime(1);
    expect(seen.pings).toEqual([250, 900]);
    liveness.heard(); // the reply: nothing is outstanding any more
    seen.outstanding = 0;
    jest.advanceTimersByTime(2000);
    await nextPoll();
    expect(seen.changes).toEqual([]);
    liveness.stop();
  });

  it('a caller stalled past the window reads what waits in its sockets before judging', async () => {
    const { liveness, seen } = watch();
    liveness.waiting();
    jest.advanceTimersByTime(250);
    // The caller's own event loop blocks for 2 s: the timer fires late, and the PONG already sits in the
    // kernel; it is read in the poll phase, before the verdict.
    jest.advanceTimersByTime(2000);
    liveness.heard();
    await nextPoll();
    expect(seen.changes).toEqual([]);
    expect(liveness.responsive).toBe(true);
    liveness.stop();
  });

  it('counts silence from the first request after an idle spell, not from the last answer', () => {
    const { liveness, seen } = watch(0);
    liveness.waiting();
    jest.advanceTimersByTime(10_000); // idle: the watch ends
    seen.outstanding = 1;
    liveness.waiting();
    jest.advanceTimersByTime(249);
    expect(seen.pings).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(seen.pings).toEqual([10_250]);
    liveness.stop();
  });

  it('stop() ends every timer', async () => {
    const { liveness, seen } = watch();
    liveness.waiting();
    jest.advanceTimersByTime(250);
    liveness.stop();
    jest.advanceTimersByTime(10_000);
    await nextPoll();
    expect(seen.pings).toEqual([250]);
    expect(seen.changes).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });
});
