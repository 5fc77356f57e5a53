import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import {
  EVERYONE,
  JOIN_ANSWERS_PER_SECOND,
  JOIN_ANSWER_BURST_PER_ADDRESS,
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

  it('remembers at most MAX_REQUESTERS requesters, refusing new ones while all are pending', () => {
    joins = new JoinAnswers(
      GAP,
      () => window,
      (to) => answered.push({ to, at: Date.now() }),
      () => random,
      10_000,
    );
    const address = (i: number) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`;
    for (let i = 0; i < MAX_REQUESTERS + 10; i++)
      joins.request({ address: address(i), port: 1000 }, Date.now());
    expect(joins.coalesced + joins.overBudget).toBe(10);
    jest.advanceTimersByTime(window);
    expect(answered).toHaveLength(MAX_REQUESTERS);
    // Once their gap is over, old requesters make room for new ones.
    jest.advanceTimersByTime(GAP);
    joins.request({ address: '127.0.0.8', port: 1 }, Date.now());
    jest.advanceTimersByTime(window);
    expect(answered).toHaveLength(MAX_REQUESTERS + 1);
  });

  it('answers one address, whatever its ports, a burst of four, then 1000 / gap a second (docs/limits.md: four)', () => {
    // Forged requests naming one address, a new port each time: 50 a second for 10 s.
    const start = Date.now();
    for (let i = 0; i < 500; i++) {
      joins.request({ address: '127.0.0.9', port: 1024 + i }, Date.now());
      jest.advanceTimersByTime(20);
    }
    // Up to the burst's worth may still be booked: let them go.
    jest.advanceTimersByTime(JOIN_ANSWER_BURST_PER_ADDRESS * GAP + window);
    const seconds = (Date.now() - start) / 1000;
    expect(answered.length).toBeLessThanOrEqual(JOIN_ANSWER_BURST_PER_ADDRESS + (1000 / GAP) * seconds);
    expect(answered.length).toBeGreaterThanOrEqual((1000 / GAP) * 10 - 1);
    expect(joins.overBudget).toBe(500 - answered.length);
    // Answers are spread, not sent in bursts beyond the first: no second had more than four and the burst.
    const perSecond = new Map<number, number>();
    for (const { at } of answered)
      perSecond.set(
        Math.floor((at - start) / 1000),
        (perSecond.get(Math.floor((at - start) / 1000)) ?? 0) + 1,
      );
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(JOIN_ANSWER_BURST_PER_ADDRESS + 1000 / GAP);
    // Another address has a budget of its own: answered at once.
    joins.request({ address: '127.0.0.10', port: 1 }, Date.now());
    jest.advanceTimersByTime(window);
    expect(answered.at(-1)?.to).toEqual({ address: '127.0.0.10', port: 1 });
  });

  it('nodes sharing one address (several on a host) are each answered, up to the burst at once', () => {
    random = 0;
    for (let port = 1; port <= JOIN_ANSWER_BURST_PER_ADDRESS; port++)
      joins.request({ address: '127.0.0.11', port }, Date.now());
    jest.advanceTimersByTime(1);
    expect(answered.map((a) => a.to?.port)).toEqual([1, 2, 3, 4]);
  });

  it('sends at most JOIN_ANSWERS_PER_SECOND answers a second in all, however many addresses ask', () => {
    const start = Date.now();
    // 2,000 addresses, each asking once, over two seconds.
    for (let i = 0; i < 2000; i++) {
      joins.request({ address: `10.1.${i >> 8}.${i & 255}`, port: 7 }, Date.now());
      if (i % 10 === 9) jest.advanceTimersByTime(10);
    }
    jest.advanceTimersByTime(window);
    const seconds = (Date.now() - start) / 1000;
    expect(answered.length).toBeLessThanOrEqual(JOIN_ANSWERS_PER_SECOND * (1 + seconds));
    expect(answered.length).toBeGreaterThanOrEqual(JOIN_ANSWERS_PER_SECOND * seconds);
    expect(joins.overBudget + joins.coalesced).toBe(2000 - answered.length);
  });

  it('cancel() drops pending answers', () => {
    joins.request(undefined, Date.now());
    joins.cancel();
    jest.advanceTimersByTime(window * 2);
    expect(answered).toHaveLength(0);
  });
});
