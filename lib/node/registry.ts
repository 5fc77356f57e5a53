import type { Advert, AdvertSource } from './advert.js';
import {
  compareNodes,
  recordFromAdvert,
  refreshRecord,
  startedFirst,
  type PeerRecord,
} from './peer-record.js';
import type { NodeState } from './states.js';

/** What applying one advert did to the registry; the node turns it into events. */
export type RegistryChange =
  | { kind: 'added'; peer: PeerRecord }
  | { kind: 'state'; peer: PeerRecord; previous: NodeState }
  | { kind: 'refreshed'; peer: PeerRecord; changed: boolean }
  | { kind: 'removed'; peer: PeerRecord; reason: RemovalReason }
  | { kind: 'duplicate'; kept: PeerRecord; ignored: { id: string; iid: string }; displaced?: PeerRecord }
  | { kind: 'ignored' }
  | { kind: 'stale' };

/** Why a peer left a registry: it unregistered, was seen DOWN, went silent for nodeTimeout, or lost to an earlier started node with its id. */
export type RemovalReason = 'unregister' | 'down' | 'timeout' | 'duplicate';

/**
 * Every known node by instance id, and per service id the ordered rotation of RUNNING ones.
 * A node outside RUNNING leaves its rotation at once and returns when RUNNING again.
 */
export class Registry {
  private readonly peers = new Map<string, PeerRecord>();
  private readonly rotations = new Map<string, PeerRecord[]>();
  /** The admitted non-replica node of each id, so a duplicate is found without a scan. */
  private readonly holders = new Map<string, PeerRecord>();
  /** Non-replica nodes whose id another non-replica node already holds: instance id -> last seen. */
  private readonly ignoredDuplicates = new Map<string, { id: string; lastSeen: number }>();
  /** Instance ids that unregistered, with their last seq, so a late reordered advert does not revive them. */
  private readonly tombstones = new Map<string, { seq: number; at: number }>();
  /** Bumped whenever any rotation changes; lets callers cache what they derive from rotations. */
  version = 0;

  get size(): number {
    return this.peers.size;
  }

  get(iid: string): PeerRecord | undefined {
    return this.peers.get(iid);
  }

  all(): PeerRecord[] {
    return [...this.peers.values()];
  }

  /** Every RUNNING node of every service, grouped by service id, each group in cluster order. */
  allRunning(): PeerRecord[] {
    const result: PeerRecord[] = [];
    for (const list of this.rotations.values()) for (const peer of list) result.push(peer);
    return result;
  }

  /** The RUNNING nodes of one service id, in the cluster-wide order. Do not mutate. */
  running(id: string): readonly PeerRecord[] {
    return this.rotations.get(id) ?? EMPTY;
  }

  ignoredCount(): number {
    return this.ignoredDuplicates.size;
  }

  apply(advert: Advert, source: AdvertSource, now: number, self = false): RegistryChange {
    const tomb = this.tombstones.get(advert.iid);
    if (tomb !== undefined) {
      if (advert.seq <= tomb.seq) return { kind: 'stale' };
      this.tombstones.delete(advert.iid);
    }
    const known = this.peers.get(advert.iid);
    if (known !== undefined) return this.update(known, advert, source, now);
    if (advert.event === 'unregister' || advert.state === 'DOWN') {
      this.tombstones.set(advert.iid, { seq: advert.seq, at: now });
      return { kind: 'ignored' };
    }
    const ignored = this.ignoredDuplicates.get(advert.iid);
    if (ignored !== undefined) {
      ignored.lastSeen = now;
      return { kind: 'ignored' };
    }
    if (!advert.replica) {
      const holder = this.holders.get(advert.id);
      if (holder !== undefined) return this.resolveDuplicate(holder, advert, source, now, self);
    }
    return { kind: 'added', peer: this.admit(advert, source, now, self) };
  }

  remove(iid: string, reason: RemovalReason, now: number): PeerRecord | undefined {
    const peer = this.peers.get(iid);
    if (peer === undefined) return undefined;
    this.peers.delete(iid);
    if (this.holders.get(peer.id) === peer) this.holders.delete(peer.id);
    this.leaveRotation(peer);
    if (reason === 'unregister' || reason === 'down') this.tombstones.set(iid, { seq: peer.seq, at: now });
    // The holder of a non-replica id left: duplicates it shadowed may be admitted on their next advert.
    if (!peer.replica)
      for (const [key, entry] of this.ignoredDuplicates)
        if (entry.id === peer.id) this.ignoredDuplicates.delete(key);
    return peer;
  }

  /** Marks every peer as just heard from (after an outage of the discovery backend). */
  touchAll(now: number): void {
    for (const peer of this.peers.values()) peer.lastSeen = now;
  }

  /**
   * Removes peers silent for longer than `timeout` and forgets old tombstones and duplicates. A peer's
   * silence is `silence(lastSeen, now)`: by default the time since, less this node's own stalls when the
   * node gives them (see own-stalls.ts).
   */
  evictSilent(
    now: number,
    timeout: number,
    silence: (since: number, now: number) => number = (since) => now - since,
  ): PeerRecord[] {
    const evicted: PeerRecord[] = [];
    for (const peer of this.peers.values()) {
      if (!peer.self && silence(peer.lastSeen, now) > timeout) evicted.push(peer);
    }
    for (const peer of evicted) this.remove(peer.iid, 'timeout', now);
    for (const [iid, entry] of this.ignoredDuplicates)
      if (now - entry.lastSeen > timeout) this.ignoredDuplicates.delete(iid);
    for (const [iid, tomb] of this.tombstones) if (now - tomb.at > timeout) this.tombstones.delete(iid);
    return evicted;
  }

  clear(): void {
    this.peers.clear();
    this.rotations.clear();
    this.holders.clear();
    this.ignoredDuplicates.clear();
    this.tombstones.clear();
    this.version++;
  }

  private update(peer: PeerRecord, advert: Advert, source: AdvertSource, now: number): RegistryChange {
    // UDP reorders: an advert older than what we hold says nothing new, but the peer is alive.
    if (advert.seq <= peer.seq) {
      peer.lastSeen = now;
      return { kind: 'stale' };
    }
    if (advert.event === 'unregister' || advert.state === 'DOWN') {
      peer.seq = advert.seq;
      peer.state = 'DOWN';
      this.remove(peer.iid, advert.event === 'unregister' ? 'unregister' : 'down', now);
      return { kind: 'removed', peer, reason: advert.event === 'unregister' ? 'unregister' : 'down' };
    }
    const previous = peer.state;
    const previousReason = peer.reason;
    const wasRunning = previous === 'RUNNING';
    const changed =
      peer.host !== advert.host || peer.port !== advert.port || peer.patterns !== advert.patterns;
    refreshRecord(peer, advert, source, now);
    const isRunning = peer.state === 'RUNNING';
    if (wasRunning && !isRunning) this.leaveRotation(peer);
    else if (!wasRunning && isRunning) this.enterRotation(peer);
    else if (changed && isRunning) this.version++;
    if (previous !== peer.state || previousReason !== peer.reason) {
      return { kind: 'state', peer, previous };
    }
    return { kind: 'refreshed', peer, changed };
  }

  private admit(advert: Advert, source: AdvertSource, now: number, self: boolean): PeerRecord {
    const peer = recordFromAdvert(advert, source, now, self);
    this.peers.set(peer.iid, peer);
    if (!peer.replica) this.holders.set(peer.id, peer);
    if (peer.state === 'RUNNING') this.enterRotation(peer);
    return peer;
  }

  private resolveDuplicate(
    holder: PeerRecord,
    advert: Advert,
    source: AdvertSource,
    now: number,
    self: boolean,
  ): RegistryChange {
    if (startedFirst(holder, advert)) {
      this.ignoredDuplicates.set(advert.iid, { id: advert.id, lastSeen: now });
      return { kind: 'duplicate', kept: holder, ignored: { id: advert.id, iid: advert.iid } };
    }
    // The newcomer started first: every observer must keep the same one, so the holder is displaced.
    this.remove(holder.iid, 'duplicate', now);
    this.ignoredDuplicates.set(holder.iid, { id: holder.id, lastSeen: now });
    const peer = this.admit(advert, source, now, self);
    return { kind: 'duplicate', kept: peer, ignored: { id: holder.id, iid: holder.iid }, displaced: holder };
  }

  private enterRotation(peer: PeerRecord): void {
    let list = this.rotations.get(peer.id);
    if (list === undefined) {
      list = [];
      this.rotations.set(peer.id, list);
    }
    // Binary search keeps insertion cheap with a thousand replicas.
    let low = 0;
    let high = list.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (compareNodes(list[mid], peer) < 0) low = mid + 1;
      else high = mid;
    }
    list.splice(low, 0, peer);
    this.version++;
  }

  private leaveRotation(peer: PeerRecord): void {
    const list = this.rotations.get(peer.id);
    if (list === undefined) return;
    const at = list.indexOf(peer);
    if (at === -1) return;
    list.splice(at, 1);
    if (list.length === 0) this.rotations.delete(peer.id);
    this.version++;
  }
}

const EMPTY: readonly PeerRecord[] = Object.freeze([]);
