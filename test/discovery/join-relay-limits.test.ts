import { describe, expect, it } from '@jest/globals';
import {
  JOIN_RELAYS_PER_SECOND,
  JOIN_RELAY_BURST_PER_ADDRESS,
  JoinRelay,
} from '../../lib/discovery/join-relay.js';

// The relay's limits on a clock of the test's own (shouldRelay takes the time).
const GAP = 250;

describe('JoinRelay limits', () => {
  it('relays one joiner once per gap', () => {
    const relay = new JoinRelay(GAP);
    const joiner = { host: '127.0.0.3', port: 4000 };
    expect(relay.shouldRelay(joiner, 0)).toBe(true);
    expect(relay.shouldRelay(joiner, GAP - 1)).toBe(false);
    expect(relay.shouldRelay(joiner, GAP)).toBe(true);
    expect(relay.limited).toBe(1);
  });

  it('relays one address, its port changed each time, a burst of four, then four a second', () => {
    const relay = new JoinRelay(GAP);
    let relayed = 0;
    // 50 forged requests a second for 10 s, each from a new port.
    for (let t = 0; t < 10_000; t += 20)
      if (relay.shouldRelay({ host: '127.0.0.4', port: 1024 + t / 20 }, t)) relayed++;
    expect(relayed).toBeLessThanOrEqual(JOIN_RELAY_BURST_PER_ADDRESS + 4 * 10);
    expect(relayed).toBeGreaterThanOrEqual(4 * 10);
    // Another address is not held back by it.
    expect(relay.shouldRelay({ host: '127.0.0.5', port: 1 }, 10_000)).toBe(true);
  });

  it('relays at most JOIN_RELAYS_PER_SECOND joiners a second in all, however many addresses', () => {
    const relay = new JoinRelay(GAP);
    let relayed = 0;
    // 1,000 addresses a second for 5 s.
    for (let i = 0; i < 5000; i++)
      if (relay.shouldRelay({ host: `10.2.${i >> 8}.${i & 255}`, port: 9 }, i)) relayed++;
    expect(relayed).toBeLessThanOrEqual(JOIN_RELAYS_PER_SECOND * 6);
    expect(relayed).toBeGreaterThanOrEqual(JOIN_RELAYS_PER_SECOND * 5);
  });
});
