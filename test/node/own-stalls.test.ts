import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { OwnStalls } from '../../lib/node/own-stalls.js';

// Fake clocks: advanceTimersByTime moves Date.now() and performance.now() together (time passing, the
// sweep not ticking: a blocked event loop), setSystemTime steps the wall clock alone (NTP, a resumed VM
// setting its time). The sweep's ticks are called by hand, with Date.now() as KableNode passes it.
const PERIOD = 100;
const HORIZON = 60 * 60_000;

beforeEach(() => {
  jest.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  jest.useRealTimers();
});

function onTime(stalls: OwnStalls): void {
  jest.advanceTimersByTime(PERIOD);
  stalls.tick(Date.now());
}

describe("a node's own stalls", () => {
  it('a tick that came late is a stall, and that time is not counted as a peer silence', () => {
    const stalls = new OwnStalls(PERIOD, HORIZON);
    stalls.start();
    const heardAt = Date.now();
    onTime(stalls);
    jest.advanceTimersByTime(PERIOD + 2000); // blocked: the next tick comes 2 s late
    stalls.tick(Date.now());
    expect(stalls.count).toBe(1);
    expect(stalls.listenedSince(heardAt, Date.now())).toBe(2 * PERIOD);
  });

  it('a wall clock stepped forward between ticks on time is no stall: the silence it adds stays counted', () => {
    const stalls = new OwnStalls(PERIOD, HORIZON);
    stalls.start();
    const heardAt = Date.now();
    onTime(stalls);
    jest.setSystemTime(Date.now() + 30 * 60_000);
    onTime(stalls);
    onTime(stalls);
    expect(stalls.count).toBe(0);
    expect(stalls.listenedSince(heardAt, Date.now())).toBe(30 * 60_000 + 3 * PERIOD);
  });

  it('a wall clock stepped back during a stall hides nothing: the stall is noted', () => {
    const stalls = new OwnStalls(PERIOD, HORIZON);
    stalls.start();
    onTime(stalls);
    jest.advanceTimersByTime(PERIOD + 2000);
    jest.setSystemTime(Date.now() - 10_000);
    const heardAt = Date.now() - 2000 - PERIOD;
    stalls.tick(Date.now());
    expect(stalls.count).toBe(1);
    expect(stalls.listenedSince(heardAt, Date.now())).toBe(PERIOD);
  });
});
