import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { UnsentEvents } from '../../lib/data-plane/unsent-events.js';

// Fake clocks: advanceTimersByTime is time passing (Date.now() and performance.now() together),
// setSystemTime steps the wall clock alone (NTP, a resumed VM setting its time).
beforeEach(() => {
  jest.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  jest.useRealTimers();
});

const frame = (start: number) => ({ batch: 0, start, size: 10 });

function queue(timeoutMs: number) {
  const expired: string[] = [];
  const events = new UnsentEvents(timeoutMs, (event) => {
    expired.push(event.pattern);
    return new Error(`${event.pattern} expired`);
  });
  const outcomes: string[] = [];
  const add = (pattern: string, start: number) =>
    events.add(frame(start), pattern).then(
      () => outcomes.push(`${pattern} sent`),
      () => outcomes.push(`${pattern} failed`),
    );
  return { events, expired, outcomes, add };
}

describe('events waiting for the socket', () => {
  it('fail at their timeout even if the wall clock is set back meanwhile', async () => {
    const { expired, outcomes, add } = queue(1000);
    void add('a', 0);
    await jest.advanceTimersByTimeAsync(400);
    jest.setSystemTime(Date.now() - 60 * 60_000);
    await jest.advanceTimersByTimeAsync(599);
    expect(expired).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(expired).toEqual(['a']);
    expect(outcomes).toEqual(['a failed']);
  });

  it('do not fail early if the wall clock is set forward meanwhile; each at its own deadline', async () => {
    const { events, expired, outcomes, add } = queue(1000);
    void add('a', 0);
    await jest.advanceTimersByTimeAsync(500);
    void add('b', 10);
    jest.setSystemTime(Date.now() + 60 * 60_000);
    await jest.advanceTimersByTimeAsync(499);
    expect(expired).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(expired).toEqual(['a']);
    expect(events.size).toBe(1);
    await jest.advanceTimersByTimeAsync(500);
    expect(outcomes).toEqual(['a failed', 'b failed']);
  });
});
