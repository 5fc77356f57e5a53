import { describe, expect, it, jest } from '@jest/globals';
import type { KableWarning } from '../../lib/node/errors.js';
import { WarningLimiter } from '../../lib/node/warning-limiter.js';

// docs/security.md: dropped input is "counted by kind and reported as a warning event at most once a second per
// kind". On a fake clock (Date only).
describe('warnings about dropped input', () => {
  it('counts every drop, reports at most once a second per kind, with how many went unreported', () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'], now: 1_000_000 });
    try {
      const reported: KableWarning[] = [];
      const limiter = new WarningLimiter((warning) => reported.push(warning));
      for (let i = 0; i < 100; i++) limiter.count('badSeal', 'a datagram sealed with another key');
      limiter.count('truncated', 'a short datagram');
      expect(reported.map((w) => [w.code, w.count])).toEqual([
        ['badSeal', 1],
        ['truncated', 1],
      ]);
      jest.setSystemTime(1_000_999);
      limiter.count('badSeal', 'again');
      expect(reported).toHaveLength(2);
      jest.setSystemTime(1_001_000);
      limiter.count('badSeal', 'again');
      expect(reported.map((w) => [w.code, w.count])).toEqual([
        ['badSeal', 1],
        ['truncated', 1],
        ['badSeal', 101],
      ]);
      expect(limiter.counts).toEqual({ badSeal: 102, truncated: 1 });
    } finally {
      jest.useRealTimers();
    }
  });

  it('a throwing listener does not turn a drop into a crash', () => {
    const limiter = new WarningLimiter(() => {
      throw new Error('listener bug');
    });
    expect(() => limiter.count('garbage', 'x')).not.toThrow();
    expect(limiter.counts).toEqual({ garbage: 1 });
  });
});
