import type { ProtocolVersion } from './protocol-version.js';
import type { NodeState } from './states.js';

/**
 * What a node tells its cluster about itself. It never lists other nodes, so its encoded size
 * does not grow with the cluster (the UDP backend refuses anything over 1,200 bytes).
 */
export type AdvertEvent = 'advertisement' | 'update' | 'unregister';

/** An advert's content as every node decodes it: who the node is, where it serves, its state and patterns. */
export interface Advert {
  /** Periodic advertisement, immediate update on a change, or unregister when the node leaves. */
  event: AdvertEvent;
  /** Service id; replicas share it. */
  id: string;
  /** Unique instance id of this process's node (random UUID). */
  iid: string;
  /** Whether several nodes may share `id`. */
  replica: boolean;
  /** Data-plane address where this node serves requests. */
  host: string;
  /** Data-plane port, with `host`. */
  port: number;
  /** The machine's host name, for people reading tables. */
  hostname: string;
  /** The node's process id, for people reading tables. */
  pid: number;
  /** Random safe integer; with `iid` it orders nodes identically on every peer. */
  index: number;
  /** Milliseconds since the epoch when the node came UP: decides which duplicate wins. */
  startedAt: number;
  /** The node's state: only RUNNING nodes get traffic. */
  state: NodeState;
  /** Why the node is in its state, as given to stop() or doing() (at most 200 bytes). */
  reason?: string;
  /** When the node entered `state`, milliseconds since the epoch. */
  since: number;
  /** Increases with every advert a node sends in one boot: receivers drop older ones (UDP reorders). */
  seq: number;
  /** Digest of the message/event patterns the node handles; '' when it serves none. */
  patterns: string;
  /** The node's free-form `meta` option. */
  meta?: Record<string, unknown>;
  /**
   * Indexes of peers the sender has not heard from for over an advert interval: each of them answers
   * with an advertisement at once, so one lost advert is not mistaken for a dead node (see SilenceProbe).
   */
  probe?: number[];
  /**
   * The data-plane protocol version the node speaks (see protocol-version.ts). Absent only in an advert
   * from before versions were advertised: taken as the current major.
   */
  protocol?: ProtocolVersion;
  /**
   * Set on receipt only: fields after the known ones, from a newer minor version. They are ignored, and
   * counted (stats: `unknownAdvertFields`).
   */
  unknownFields?: number;
}

/** Where a datagram came from: the sender's discovery socket. */
export interface AdvertSource {
  /** The sender's IPv4 address. */
  address: string;
  /** The sender's discovery port. */
  port: number;
}
