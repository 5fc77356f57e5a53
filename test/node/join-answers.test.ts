import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import {
  EVERYONE,
  JoinAnswers,
  MAX_REQUESTERS,
  asksEveryone,
  joinWindow,
  type AnswerTarget,
} from '../../lib/node/join-answers.js';

const GAP = 250;

describe('JoinAnswers', () => {
  let answered: Array<{ to: AnswerTarget; at: number }>;
  let window: number;
  let random: number;
  let joins: JoinAnswers;

  beforeEach(() => {
    jest.useFakeTimers({ now: 100_000 });
    answered = [];
    window = 40;
    random = 0.5;
    joins = new JoinAnswers(
      GAP,
      () => window,
      (to) => answered.push({ to, at: Date.now() }),
      () => random,
    );
  });
  afterEach(() => {
    joins.cancel();
    jest.useRealTimers();
  });

  it('recognises a join request, and spreads the window with the cluster size', () => {
    expect(asksEveryone([EVERYONE])).toBe(true);
    expect(asksEveryone([12, 34])).toBe(false);
    expect(asksEveryone(undefined)).toBe(false);
    expect(joinWindow(3, 3000)).toBe(1.5);
    expect(joinWindow(1000, 3000)).toBe(500);
    // Capped at half an advert interval.
    expect(joinWindow(100_000, 3000)).toBe(1500);
  });

  it('answers at the random moment drawn within the window', () => {
    random = 0.75;
    joins.request(undefined, Date.now());
    jest.advanceTimersByTime(29);
    expect(answered).toHaveLength(0);
    jest.advanceTimersByTime(1);
    expect(answered).toEqual([{ to: undefined, at: 100_030 }]);
  });

  it('answers every request to everyone made while one answer is pending with that one answer', () => {
    for (let i = 0; i < 50; i++) joins.request(undefined, Date.now());
    jest.advanceTimersByTime(window);
    expect(answered).toHaveLength(1);
    expect(joins.coalesced).toBe(49);
  });

  it('skips the answer when an advert to everyone went out after the request', () => {
    joins.request(undefined, Date.now());
    jest.advanceTimersByTime(5);
    joins.sentToAll(Date.now());
    jest.advanceTimersByTime(window);
    expect(answered).toHaveLength(0);
    expect(joins.coalesced).toBe(1);
  });

  it('answers one requester at most once per gap, deferring rather than dropping', () => {
    random = 0;
    joins.request(undefined, Date.now());
    jest.advanceTimersByTime(1);
    joins.request(undefined, Date.now());
    jest.advanceTimersByTime(GAP - 2);
    expect(answered).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(answered.map((a) => a.at - 100_000)).toEqual([0, GAP]);
  });

  it('holds a requester restarting in a loop to 1000 / gap answers a second, per address', () => {
    const looping = { address: '127.0.0.5', port: 5000 };
    const other = { address: '127.0.0.6', port: 5000 };
    // A restart every 20 ms for ten seconds: 500 requests.
    for (let t = 0; t < 10_000; t += 20) {
      joins.request(looping, Date.now());
      jest.advanceTimersByTime(20);
    }
    jest.advanceTimersByTime(GAP + window);
    const toLooping = answered.filter((a) => a.to === looping);
    expect(toLooping.length).toBeLessThanOrEqual(10_000 / GAP + 1);
    expect(toLooping.length).toBeGreaterThanOrEqual(10_000 / GAP - 1);
    // Another address has a limit of its own: answered at once, not behind the looping one.
    joins.request(looping, Date.now());
    joins.request(other, Date.now());
    jest.advanceTimersByTime(window);
    expect(answered.at(-1)?.to).toBe(other);
  });

  it('remembers at most MAX_REQUESTERS addresses, refusing new ones while all are pending', () => {
    for (let i = 0; i < MAX_REQUESTERS + 10; i++)
      joins.request({ address: '127.0.0.7', port: 1000 + i }, Date.now());
    expect(joins.coalesced).toBe(10);
    jest.advanceTimersByTime(window);
    expect(answered).toHaveLength(MAX_REQUESTERS);
    // Once their gap is over, old requesters make room for new ones.
    jest.advanceTimersByTime(GAP);
    joins.request({ address: '127.0.0.8', port: 1 }, Date.now());
    jest.advanceTimersByTime(window);
    expect(answered).toHaveLength(MAX_REQUESTERS + 1);
  });

  it('cancel() drops pending answers', () => {
    joins.request(undefined, Date.now());
    joins.cancel();
    jest.advanceTimersByTime(window * 2);
    expect(answered).toHaveLength(0);
  });
});
