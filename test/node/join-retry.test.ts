import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { asksEveryone } from '../../lib/node/join-answers.js';
import { MemoryCluster } from '../support/memory-cluster.js';

// Time is the subject: fake clocks; deliveries run on the real setImmediate.
let cluster: MemoryCluster;
beforeEach(() => {
  jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
});
afterEach(async () => {
  jest.useRealTimers();
  await cluster.close();
});

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('a join request that gets no answer', () => {
  it('is sent again after 300 ms, so a lost datagram costs 300 ms rather than an advert interval', async () => {
    let newcomerIid = '';
    let dropped = 0;
    cluster = new MemoryCluster({
      filter: (advert) => {
        if (advert.iid !== newcomerIid || !asksEveryone(advert.probe) || dropped > 0) return true;
        dropped++;
        return false;
      },
    });
    const member = await cluster.up('member', { advertiseInterval: 3000 });
    await jest.advanceTimersByTimeAsync(3100); // the member's own join and first periodic advert are past
    const newcomer = cluster.node('newcomer', { advertiseInterval: 3000 });
    newcomerIid = newcomer.iid;
    await newcomer.up();
    await settle();
    expect(dropped).toBe(1);
    expect(newcomer.peer(member.iid)).toBeUndefined();

    await jest.advanceTimersByTimeAsync(299);
    await settle();
    expect(newcomer.peer(member.iid)).toBeUndefined();
    await jest.advanceTimersByTimeAsync(5); // the retry, then the member's answer (window 0.5 ms)
    await settle();
    await jest.advanceTimersByTimeAsync(5);
    await settle();
    expect(newcomer.peer(member.iid)).toBeDefined();
    expect(newcomer.stats().joinRetries).toBe(1);
    // Once answered, no more retries.
    await jest.advanceTimersByTimeAsync(1000);
    expect(newcomer.stats().joinRetries).toBe(1);
  });

  it('is not repeated when answered, nor by a node alone more than twice', async () => {
    cluster = new MemoryCluster();
    const alone = await cluster.up('alone', { advertiseInterval: 3000 });
    await jest.advanceTimersByTimeAsync(2000);
    expect(alone.stats().joinRetries).toBe(2);
    const newcomer = await cluster.up('newcomer', { advertiseInterval: 3000 });
    await jest.advanceTimersByTimeAsync(2000);
    expect(newcomer.peer(alone.iid)).toBeDefined();
    expect(newcomer.stats().joinRetries).toBe(0);
  });
});
