import { describe, expect, it } from '@jest/globals';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { MAX_PROBED, SilenceProbe } from '../../lib/node/silence-probe.js';

const peer = (index: number, lastSeen: number, self = false) =>
  ({ index, lastSeen, self, iid: `p${index}` }) as unknown as PeerRecord;

describe('SilenceProbe', () => {
  it('names only peers silent past the threshold, longest silent first, at most eight', () => {
    const probe = new SilenceProbe(1000, 100);
    const peers = [peer(1, 9500), peer(2, 8000), peer(3, 7000, true)];
    for (let i = 0; i < 20; i++) peers.push(peer(100 + i, 5000 + i));
    const named = probe.due(peers, 10_000);
    expect(named).toHaveLength(MAX_PROBED);
    expect(named).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
    // Not the node itself, nor a peer heard from within the threshold.
    expect(probe.due([peer(1, 9500), peer(3, 0, true)], 10_400)).toBeUndefined();
  });

  it('sends at most one probe per interval', () => {
    const probe = new SilenceProbe(1000, 100);
    const silent = [peer(1, 0)];
    expect(probe.due(silent, 5000)).toEqual([1]);
    expect(probe.due(silent, 5099)).toBeUndefined();
    expect(probe.due(silent, 5100)).toEqual([1]);
    expect(probe.probesSent).toBe(2);
  });

  it('answers a probe naming this node, at most once per half interval', () => {
    const probe = new SilenceProbe(1000, 100);
    expect(probe.shouldAnswer(undefined, 7, 0)).toBe(false);
    expect(probe.shouldAnswer([1, 2], 7, 0)).toBe(false);
    expect(probe.shouldAnswer([1, 7], 7, 0)).toBe(true);
    expect(probe.shouldAnswer([7], 7, 49)).toBe(false);
    expect(probe.shouldAnswer([7], 7, 50)).toBe(true);
    expect(probe.probesAnswered).toBe(2);
  });
});
