import type { PeerRecord } from './peer-record.js';

/** At most this many peers are named in one probe, so the advert stays a single small datagram. */
export const MAX_PROBED = 8;

/**
 * Tells a lost advert from a dead peer before the timeout decides.
 *
 * A peer silent for more than one advert interval (and a quarter, for timer drift) is a suspect. While
 * there are suspects, the node sends an early advertisement naming them (by their `index`) every
 * `probeEvery` ms; a named node answers at once with an advertisement of its own. A live peer behind
 * 20% loss then gets about fourteen more chances (each one probe plus one answer) before `nodeTimeout`
 * with the defaults, instead of none, so loss alone practically never evicts it; a dead or cut-off
 * peer answers nothing and is evicted at `nodeTimeout`, as before.
 *
 * Costs: probes go out only while someone is silent, at most one datagram per `probeEvery`; answers
 * are at most one per `probeEvery / 2`, however many nodes probe the same peer (one broadcast answer
 * serves them all).
 */
export class SilenceProbe {
  private lastProbe = Number.NEGATIVE_INFINITY;
  private lastAnswer = Number.NEGATIVE_INFINITY;
  probesSent = 0;
  probesAnswered = 0;

  constructor(
    private readonly suspectAfter: number,
    private readonly probeEvery: number,
  ) {}

  /** Indexes of the peers to name in a probe now, the longest silent first; undefined when none is due. */
  due(peers: Iterable<PeerRecord>, now: number): number[] | undefined {
    if (now - this.lastProbe < this.probeEvery) return undefined;
    const suspects: PeerRecord[] = [];
    for (const peer of peers) if (!peer.self && now - peer.lastSeen > this.suspectAfter) suspects.push(peer);
    if (suspects.length === 0) return undefined;
    suspects.sort((a, b) => a.lastSeen - b.lastSeen);
    this.lastProbe = now;
    this.probesSent++;
    return suspects.slice(0, MAX_PROBED).map((peer) => peer.index);
  }

  /** Whether a probe naming this node (`index`) should be answered now. */
  shouldAnswer(probed: readonly number[] | undefined, index: number, now: number): boolean {
    if (probed === undefined || !probed.includes(index)) return false;
    if (now - this.lastAnswer < this.probeEvery / 2) return false;
    this.lastAnswer = now;
    this.probesAnswered++;
    return true;
  }
}
