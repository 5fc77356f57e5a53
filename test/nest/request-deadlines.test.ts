import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { DeadlineEntry, RequestDeadlines } from '../../lib/nest/request-deadlines.js';
import { MAX_TIMER_MS } from '../../lib/node/validate-options.js';

/** Records when it expired, in the list's clock. */
class Probe extends DeadlineEntry {
  constructor(
    readonly name: string,
    private readonly expired: string[],
    private readonly then: () => void = () => {},
  ) {
    super();
  }

  onDeadline(): void {
    this.expired.push(this.name);
    this.then();
  }
}

let expired: string[];
let errors: unknown[];
let list: RequestDeadlines;
/** Every timer the list set (Jest 30's fake timers also fake `performance.now()`). */
let timersSet: jest.Spied<typeof setTimeout>;

beforeEach(() => {
  jest.useFakeTimers();
  timersSet = jest.spyOn(globalThis, 'setTimeout');
  expired = [];
  errors = [];
  list = new RequestDeadlines((error) => errors.push(error));
});

afterEach(() => {
  timersSet.mockRestore();
  jest.useRealTimers();
});

function probe(name: string, timeoutMs: number, then?: () => void): Probe {
  const entry = new Probe(name, expired, then);
  list.add(entry, timeoutMs);
  return entry;
}

describe('RequestDeadlines', () => {
  it('expires entries in due order, each at its own time, whatever order they came in', () => {
    probe('b', 30);
    probe('a', 10);
    probe('c', 20);
    jest.advanceTimersByTime(9);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(['a']);
    jest.advanceTimersByTime(10);
    expect(expired).toEqual(['a', 'c']);
    jest.advanceTimersByTime(10);
    expect(expired).toEqual(['a', 'c', 'b']);
    expect(list.size).toBe(0);
  });

  it('sets one timer for a run of requests with the same timeout, however many come', () => {
    for (let i = 0; i < 1000; i++) {
      probe(`r${i}`, 100);
      jest.advanceTimersByTime(0.05);
    }
    expect(timersSet).toHaveBeenCalledTimes(1);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(100);
    expect(expired).toHaveLength(1000);
    expect(expired.slice(0, 3)).toEqual(['r0', 'r1', 'r2']);
  });

  it('places an earlier due time before the later ones and sets the timer for it', () => {
    probe('late', 100);
    probe('latest', 300);
    probe('middle', 200);
    expect(timersSet).toHaveBeenCalledTimes(1);
    probe('first', 50);
    expect(timersSet).toHaveBeenCalledTimes(2);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(50);
    expect(expired).toEqual(['first']);
    jest.advanceTimersByTime(250);
    expect(expired).toEqual(['first', 'late', 'middle', 'latest']);
  });

  it('leaves the timer alone when the head is removed, then waits for the new head', () => {
    const head = probe('head', 100);
    probe('next', 200);
    list.remove(head);
    expect(timersSet).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(100);
    expect(expired).toEqual([]);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(99);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(['next']);
  });

  it('never expires a removed entry, from the middle or the tail', () => {
    probe('a', 10);
    const b = probe('b', 20);
    const c = probe('c', 30);
    list.remove(b);
    list.remove(c);
    list.remove(c);
    jest.advanceTimersByTime(100);
    expect(expired).toEqual(['a']);
  });

  it('moves an entry listed again to its new due time', () => {
    const a = probe('a', 10);
    probe('b', 20);
    list.add(a, 30);
    expect(list.size).toBe(2);
    jest.advanceTimersByTime(30);
    expect(expired).toEqual(['b', 'a']);
  });

  it('keeps no timer once nothing is listed: after removals and after the last expiry', () => {
    const a = probe('a', 100);
    const b = probe('b', 100);
    list.remove(b);
    expect(jest.getTimerCount()).toBe(1);
    list.remove(a);
    expect(jest.getTimerCount()).toBe(0);
    expect(list.armed).toBe(false);
    probe('c', 100);
    jest.advanceTimersByTime(100);
    expect(expired).toEqual(['c']);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('expires the other due entries when one onDeadline throws, and hands the error over', () => {
    const boom = new Error('boom');
    probe('a', 10);
    probe('thrower', 10, () => {
      throw boom;
    });
    probe('b', 10);
    probe('later', 20);
    jest.advanceTimersByTime(10);
    expect(expired).toEqual(['a', 'thrower', 'b']);
    expect(errors).toEqual([boom]);
    jest.advanceTimersByTime(10);
    expect(expired).toEqual(['a', 'thrower', 'b', 'later']);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('takes an entry out before its onDeadline runs, and lists one added there for later', () => {
    const a: Probe = probe('a', 10, () => {
      expect(a.listed).toBe(false);
      expect(list.size).toBe(0);
      probe('again', 1);
    });
    jest.advanceTimersByTime(10);
    expect(expired).toEqual(['a']);
    expect(list.size).toBe(1);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(['a', 'again']);
    expect(errors).toEqual([]);
  });

  it('waits in steps of the longest timer for a deadline beyond it, not firing at once', () => {
    probe('far', MAX_TIMER_MS + 1000);
    expect(timersSet).toHaveBeenLastCalledWith(expect.any(Function), MAX_TIMER_MS);
    jest.advanceTimersByTime(MAX_TIMER_MS);
    expect(expired).toEqual([]);
    expect(timersSet).toHaveBeenLastCalledWith(expect.any(Function), 1000);
    jest.advanceTimersByTime(1000);
    expect(expired).toEqual(['far']);
  });
});
