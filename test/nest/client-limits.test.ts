import { describe, expect, it } from '@jest/globals';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';

const MAX_TIMER_MS = 2 ** 31 - 1; // the longest delay a Node timer keeps

describe('client and server options', () => {
  it('refuse delays Node timers cannot keep, naming the option', () => {
    expect(() => new KableClientProxy({ timeout: MAX_TIMER_MS + 1 })).toThrow(
      /KableClientProxy option "timeout" must be at most 2147483647 ms/,
    );
    expect(() => new KableClientProxy({ pickTimeout: MAX_TIMER_MS + 1 })).toThrow(/"pickTimeout".*at most/);
    expect(() => new KableServer({ id: 'math', drainTimeout: MAX_TIMER_MS + 1 })).toThrow(
      /KableServer option "drainTimeout" must be at most/,
    );
    expect(() => new KableServer({ id: 'math', leaveGrace: MAX_TIMER_MS + 1 })).toThrow(/"leaveGrace"/);
  });
});
