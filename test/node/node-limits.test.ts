import { afterEach, describe, expect, it } from '@jest/globals';
import { KableOptionsError } from '../../lib/node/errors.js';
import { KableSentinel } from '../../lib/node/sentinel.js';
import { MemoryCluster } from '../support/memory-cluster.js';

let cluster: MemoryCluster;
afterEach(() => cluster?.close());

describe('delays Node timers cannot keep', () => {
  const MAX_TIMER_MS = 2 ** 31 - 1; // the longest delay a Node timer keeps
  const tooLong = MAX_TIMER_MS + 1;

  it('are refused by the node options, naming the option and the limit', () => {
    cluster = new MemoryCluster();
    for (const options of [
      { pickTimeout: tooLong },
      { advertiseInterval: tooLong },
      { nodeTimeout: tooLong },
      { busy: { maxEventLoopDelayMs: tooLong } },
      { busy: { maxEventLoopDelayMs: 100, checkInterval: tooLong } },
    ]) {
      expect(() => cluster.node('a', options)).toThrow(KableOptionsError);
      expect(() => cluster.node('a', options)).toThrow(/at most 2147483647 ms/);
    }
    // The largest delay a timer keeps is still fine.
    expect(() => cluster.node('a', { pickTimeout: MAX_TIMER_MS })).not.toThrow();
  });

  it('are refused by pick() and by a sentinel', async () => {
    cluster = new MemoryCluster();
    const node = await cluster.up('a');
    await expect(node.pick('nobody', { timeout: tooLong })).rejects.toThrow(
      /pick\(\) option "timeout" must be at most 2147483647 ms/,
    );
    expect(() => new KableSentinel(node, { probe: () => true, interval: tooLong })).toThrow(/at most/);
  });
});
