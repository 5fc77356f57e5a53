import { describe, expect, it, jest } from '@jest/globals';
import { randomInt } from 'node:crypto';
import { GOSSIP_FANOUT, MAX_UNICAST_PEERS, UnicastPeers } from '../../lib/discovery/unicast-peers.js';
import { kable } from '../../lib/kable.js';

// The rule behind gossip's address list, on an explicit clock: the process tests only check that it
// holds across real sockets.
const NODE_TIMEOUT = 1000;
const seed = { host: '127.0.0.1', port: 4000 };
const keys = (peers: UnicastPeers, now: number) => peers.targets(now).map((t) => `${t.host}:${t.port}`);

describe('unicast send list', () => {
  it('keeps a learned address while it answers, drops it after nodeTimeout of silence, never drops a seed', () => {
    const peers = new UnicastPeers([seed], NODE_TIMEOUT);
    peers.heard('127.0.0.2', 4001, 0);
    expect(keys(peers, 0)).toEqual(['127.0.0.1:4000', '127.0.0.2:4001']);
    peers.heard('127.0.0.2', 4001, 900);
    // Silent for exactly nodeTimeout: still there; one millisecond more: gone.
    expect(keys(peers, 1900)).toEqual(['127.0.0.1:4000', '127.0.0.2:4001']);
    expect(keys(peers, 1901)).toEqual(['127.0.0.1:4000']);
    expect(peers.size).toBe(0);
    expect(keys(peers, 1_000_000)).toEqual(['127.0.0.1:4000']);
  });

  it('tries an address named by gossip for one nodeTimeout, and passes on only those that answered', () => {
    const peers = new UnicastPeers([seed], NODE_TIMEOUT);
    peers.told([{ host: '127.0.0.3', port: 4002 }], 0);
    peers.heard('127.0.0.2', 4001, 0);
    expect(keys(peers, 500)).toContain('127.0.0.3:4002');
    expect(peers.sample(10, 500)).toEqual([{ host: '127.0.0.2', port: 4001 }]);
    expect(keys(peers, 1001)).toEqual(['127.0.0.1:4000']);
  });

  it('never sends to its own address, even when gossip names it', () => {
    const peers = new UnicastPeers([seed, { host: '127.0.0.9', port: 4009 }], NODE_TIMEOUT);
    peers.isSelf('127.0.0.9', 4009);
    peers.told([{ host: '127.0.0.9', port: 4009 }], 0);
    peers.heard('127.0.0.9', 4009, 0);
    expect(keys(peers, 0)).toEqual(['127.0.0.1:4000']);
  });

  it('keeps at most 1024 addresses and tells at most 24 per advert (docs/deployment.md figures)', () => {
    expect({ MAX_UNICAST_PEERS, GOSSIP_FANOUT }).toEqual({ MAX_UNICAST_PEERS: 1024, GOSSIP_FANOUT: 24 });
    const peers = new UnicastPeers([seed], NODE_TIMEOUT);
    for (let i = 0; i < 1100; i++) peers.heard(`127.0.${i >> 8}.${(i & 255) + 1}`, 5000, 0);
    peers.told([{ host: '127.1.0.1', port: 5000 }], 0);
    expect(peers.size).toBe(1024);
    expect(peers.targets(0)).toHaveLength(1025);
    expect(peers.sample(undefined, 0)).toHaveLength(24);
    // Room comes back as addresses expire.
    peers.heard('127.2.0.1', 5000, 2000);
    expect(peers.targets(2000)).toHaveLength(1);
    peers.heard('127.2.0.1', 5000, 2000);
    expect(peers.targets(2000)).toHaveLength(2);
  });
});

describe('unicast seeds given by name', () => {
  it('are resolved at up() and again every 30 s (a headless service whose pods change)', async () => {
    // Only the interval timers are faked: the socket, DNS and promises run for real.
    jest.useFakeTimers({
      doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'hrtime', 'performance', 'Date'],
    });
    const resolves = jest.spyOn(UnicastPeers.prototype, 'resolveSeeds');
    const port = randomInt(20_000, 60_000);
    const node = kable('named-seed', {
      host: '127.0.0.1',
      discovery: {
        mode: 'unicast',
        interface: '127.0.0.1',
        port,
        peers: [`localhost:${port + 1}`],
        advertiseInterval: 60_000,
      },
    });
    try {
      await node.up();
      expect(resolves).toHaveBeenCalledTimes(1);
      jest.advanceTimersByTime(29_999);
      expect(resolves).toHaveBeenCalledTimes(1);
      jest.advanceTimersByTime(1);
      expect(resolves).toHaveBeenCalledTimes(2);
      jest.advanceTimersByTime(30_000);
      expect(resolves).toHaveBeenCalledTimes(3);
    } finally {
      jest.useRealTimers();
      resolves.mockRestore();
      await node.down();
    }
  });
});
