import type { Advert, AdvertSource } from './advert.js';
import { isCompatible, PROTOCOL_VERSION, type ProtocolVersion } from './protocol-version.js';
import type { NodeState } from './states.js';

/** What a node knows of one node of its cluster (itself included). Owned by the registry: read, don't write. */
export interface PeerRecord {
  /** Service id; replicas share it. */
  readonly id: string;
  /** Unique instance id of the node (one per start). */
  readonly iid: string;
  /** Whether several nodes may share `id`. */
  readonly replica: boolean;
  /** Data-plane address where the node serves requests. */
  host: string;
  /** Data-plane port, with `host`. */
  port: number;
  /** The node's machine host name. */
  hostname: string;
  /** The node's process id. */
  pid: number;
  /** Random index that, with `iid`, orders nodes identically on every peer. */
  readonly index: number;
  /** Milliseconds since the epoch when the node came UP. */
  startedAt: number;
  /** The node's state as last advertised. */
  state: NodeState;
  /** Why the node is in its state, if it said. */
  reason?: string;
  /** When the node entered `state`, milliseconds since the epoch (its clock). */
  since: number;
  /** Sequence number of the last advert taken in. */
  seq: number;
  /** Digest of the patterns the node handles; '' when it serves none. */
  patterns: string;
  /** The node's free-form `meta` option. */
  meta?: Record<string, unknown>;
  /** The data-plane protocol version the node speaks (the current one when its advert states none). */
  protocol: ProtocolVersion;
  /** Same major version as this node's: only such a node is ever sent requests (see protocol-version.ts). */
  compatible: boolean;
  /** When the last advert of this peer arrived (local clock, milliseconds). */
  lastSeen: number;
  /** The peer's discovery socket, as seen on the last datagram. */
  source: AdvertSource;
  /** True for the observing node's own record. */
  readonly self: boolean;
}

export function recordFromAdvert(
  advert: Advert,
  source: AdvertSource,
  now: number,
  self = false,
): PeerRecord {
  return {
    id: advert.id,
    iid: advert.iid,
    replica: advert.replica,
    host: advert.host,
    port: advert.port,
    hostname: advert.hostname,
    pid: advert.pid,
    index: advert.index,
    startedAt: advert.startedAt,
    state: advert.state,
    reason: advert.reason,
    since: advert.since,
    seq: advert.seq,
    patterns: advert.patterns,
    meta: advert.meta,
    protocol: advert.protocol ?? PROTOCOL_VERSION,
    compatible: isCompatible(advert.protocol),
    lastSeen: now,
    source,
    self,
  };
}

/** Copies what may change between adverts of one boot; id, iid, replica and index never change. */
export function refreshRecord(record: PeerRecord, advert: Advert, source: AdvertSource, now: number): void {
  record.host = advert.host;
  record.port = advert.port;
  record.hostname = advert.hostname;
  record.pid = advert.pid;
  record.startedAt = advert.startedAt;
  record.state = advert.state;
  record.reason = advert.reason;
  record.since = advert.since;
  record.seq = advert.seq;
  record.patterns = advert.patterns;
  record.meta = advert.meta;
  record.protocol = advert.protocol ?? PROTOCOL_VERSION;
  record.compatible = isCompatible(advert.protocol);
  record.lastSeen = now;
  record.source = source;
}

/**
 * The one order every peer agrees on: by the random index, then by instance id. Indexes are safe
 * integers (below 2^48) so no peer rounds them differently, which broke kable's 64-bit index.
 */
export function compareNodes(a: { index: number; iid: string }, b: { index: number; iid: string }): number {
  if (a.index !== b.index) return a.index - b.index;
  return a.iid < b.iid ? -1 : a.iid > b.iid ? 1 : 0;
}

/** Which of two same-id nodes wins as the one to keep: the earlier started, ties broken by instance id. */
export function startedFirst(
  a: { startedAt: number; iid: string },
  b: { startedAt: number; iid: string },
): boolean {
  if (a.startedAt !== b.startedAt) return a.startedAt < b.startedAt;
  return a.iid < b.iid;
}
