import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export interface UdpTarget {
  host: string;
  port: number;
}

interface Learned extends UdpTarget {
  /** Last time it answered us, or was first named to us (a named address gets one nodeTimeout to answer). */
  lastHeard: number;
  /** Whether it ever answered us: only such addresses are gossiped on, so dead ones die out. */
  answered: boolean;
}

/** Most addresses one node keeps sending to; beyond it new ones are ignored until others expire. */
export const MAX_UNICAST_PEERS = 1024;
/** Addresses named in one gossip datagram (keeps it far under the 1,200-byte limit). */
export const GOSSIP_FANOUT = 24;

/**
 * Where a unicast node sends its adverts: its seeds (host names resolved again periodically, so a
 * Kubernetes headless service works) plus every discovery address it has heard from or been told about
 * by gossip. A learned address that stays silent for `nodeTimeout` is dropped; seeds never are, so a
 * restarted seed is found again.
 */
export class UnicastPeers {
  private readonly learned = new Map<string, Learned>();
  private readonly selfAddresses = new Set<string>();
  private resolvedSeeds: UdpTarget[] = [];

  constructor(
    private readonly seeds: UdpTarget[],
    private readonly nodeTimeout: number,
  ) {
    this.resolvedSeeds = seeds.filter((seed) => isIP(seed.host) !== 0);
  }

  /** Resolves host-name seeds (all their IPv4 addresses); keeps the last good answer on failure. */
  async resolveSeeds(): Promise<void> {
    const resolved: UdpTarget[] = [];
    for (const seed of this.seeds) {
      if (isIP(seed.host) !== 0) {
        resolved.push(seed);
        continue;
      }
      try {
        for (const { address } of await lookup(seed.host, { all: true, family: 4 })) {
          resolved.push({ host: address, port: seed.port });
        }
      } catch {
        resolved.push(...this.resolvedSeeds.filter((known) => known.port === seed.port));
      }
    }
    this.resolvedSeeds = dedupe(resolved);
  }

  /**
   * A valid datagram came from this address: it answers. Returns true when it had not been heard
   * before (it may have had no advert from this node yet).
   */
  heard(host: string, port: number, now = Date.now()): boolean {
    const key = `${host}:${port}`;
    if (this.selfAddresses.has(key)) return false;
    const known = this.learned.get(key);
    if (known !== undefined) {
      known.lastHeard = now;
      known.answered = true;
      return false;
    }
    if (this.learned.size >= MAX_UNICAST_PEERS) return false;
    this.learned.set(key, { host, port, lastHeard: now, answered: true });
    return true;
  }

  /** Gossip named these addresses: try them (they expire unless they answer). */
  told(addresses: UdpTarget[], now = Date.now()): void {
    for (const { host, port } of addresses) {
      const key = `${host}:${port}`;
      if (this.selfAddresses.has(key) || this.learned.has(key) || this.learned.size >= MAX_UNICAST_PEERS)
        continue;
      this.learned.set(key, { host, port, lastHeard: now, answered: false });
    }
  }

  /** Our own datagram came back from this address: it is us, never send there. */
  isSelf(host: string, port: number): void {
    const key = `${host}:${port}`;
    this.selfAddresses.add(key);
    this.learned.delete(key);
  }

  get size(): number {
    return this.learned.size;
  }

  targets(now = Date.now()): UdpTarget[] {
    for (const [key, peer] of this.learned)
      if (now - peer.lastHeard > this.nodeTimeout) this.learned.delete(key);
    const targets = new Map<string, UdpTarget>();
    for (const seed of this.resolvedSeeds) {
      const key = `${seed.host}:${seed.port}`;
      if (!this.selfAddresses.has(key)) targets.set(key, seed);
    }
    for (const [key, peer] of this.learned) targets.set(key, { host: peer.host, port: peer.port });
    return [...targets.values()];
  }

  /** A random sample of addresses that answered us recently, to tell others about. */
  sample(count = GOSSIP_FANOUT, now = Date.now()): UdpTarget[] {
    const all = [...this.learned.values()]
      .filter((peer) => peer.answered && now - peer.lastHeard <= this.nodeTimeout)
      .map(({ host, port }) => ({ host, port }));
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [all[i], all[j]] = [all[j], all[i]];
    }
    return all.slice(0, count);
  }
}

function dedupe(targets: UdpTarget[]): UdpTarget[] {
  return [...new Map(targets.map((t) => [`${t.host}:${t.port}`, t])).values()];
}
