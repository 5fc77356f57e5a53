import type { Advert, AdvertSource } from './advert.js';
import type { KableWarning } from './errors.js';

/** What a transport calls back into its node with. */
export interface DiscoveryHandlers {
  /** A decoded, authenticated advert from another node (a transport may pass the node's own; the node drops those). */
  advert(advert: Advert, source: AdvertSource): void;
  /** Something was dropped or failed; already rate-limited by the transport. */
  warning(warning: KableWarning): void;
  /**
   * The backend itself is unreachable (false) or back (true), as a Redis connection can be. While it is
   * down the node evicts nobody: silence then says nothing about the peers.
   */
  connectivity?(reachable: boolean): void;
}

/**
 * How adverts travel. The node core talks only to this; UDP, the in-memory bus and Redis implement it.
 * Implementations never throw out of `send` and never let a bad datagram reach `advert`.
 */
export interface DiscoveryTransport {
  /** Binds and starts delivering. Rejects with a clear error when the port or interface is unusable. */
  start(handlers: DiscoveryHandlers): Promise<void>;
  /** Throws KableOptionsError when this advert could never be sent (too large): called once at up(). */
  validate?(advert: Advert): void;
  /** Sends to the cluster. Fire and forget: failures become warnings. */
  send(advert: Advert): void;
  /**
   * Sends to one node's discovery address only (unicast backends): join requests are answered this way,
   * so a join costs each peer one datagram, not one per node. Without it answers go through `send`.
   */
  sendTo?(advert: Advert, to: AdvertSource): void;
  /**
   * True when `start` already delivered every live node's advert (Redis reads a snapshot): the node
   * then does not ask the cluster who is there.
   */
  readonly knowsCluster?: boolean;
  /** Sends and resolves once the datagram left (used for the last `unregister`). */
  flush?(advert: Advert): Promise<void>;
  /** Stops delivering and releases the socket or connection. */
  stop(): Promise<void>;
  /** Counters of what was dropped and why, merged into node.stats(). */
  stats(): Record<string, number>;
}
