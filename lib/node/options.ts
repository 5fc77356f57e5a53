import type { DiscoveryTransport } from './discovery-transport.js';
import type { OverloadOptions } from './overload-monitor.js';

/** How adverts travel: see DiscoveryOptions.mode. */
export type DiscoveryMode = 'broadcast' | 'multicast' | 'unicast' | 'redis';

/** How adverts travel. Defaults and bounds: docs/configuration.md. */
export interface DiscoveryOptions {
  /** 'broadcast' (default), 'multicast', 'unicast' or 'redis'. Ignored when `transport` is given. */
  mode?: DiscoveryMode;
  /** Broadcast address (default 255.255.255.255) or multicast group (default 239.255.42.99). */
  address?: string;
  /** UDP port shared by the cluster's nodes (default 5000). */
  port?: number;
  /** Local interface address: the multicast interface, and the address the socket binds to (default all). */
  interface?: string;
  /** Multicast TTL (default 1: adverts stay on the LAN). */
  ttl?: number;
  /** unicast: the 'host:port' addresses to advertise to (seeds, with gossip). */
  peers?: string[];
  /** Milliseconds between two periodic adverts (default 3000). */
  advertiseInterval?: number;
  /** Milliseconds of silence after which a peer is removed (default 3.5 × advertiseInterval). */
  nodeTimeout?: number;
  /** Most state updates a node sends per second; later changes are coalesced into one (default 20). */
  maxUpdatesPerSecond?: number;
  /** redis: connection URL (default redis://127.0.0.1:6379). */
  url?: string;
  /** A ready transport instead of one built from `mode` (the in-memory bus in tests, a custom backend). */
  transport?: DiscoveryTransport;
}

/** Options of a node: `kable(id, options)`, and the node part of KableServer, KableClientProxy and KableModule options. */
export interface KableOptions {
  /** Several nodes may share an id only if they are replicas (default false). */
  replica?: boolean;
  /** Data-plane address other nodes connect to (default: this host's first non-internal IPv4 address, else 127.0.0.1). */
  host?: string;
  /** Data-plane port (default 0: chosen by the system when the data plane listens). */
  port?: number;
  /** Free-form metadata carried in every advert; must fit the advert's size limit. */
  meta?: Record<string, unknown>;
  /** Clusters with different namespaces ignore each other (default 'default'). */
  namespace?: string;
  /** Shared 32-byte key, base64: seals adverts (and secures the data plane where supported). */
  key?: string;
  /** Key rotation: seal with the first, accept any. Excludes `key`. */
  keys?: string[];
  /** How the node finds its peers (default: broadcast on UDP port 5000). */
  discovery?: DiscoveryOptions;
  /** Default bound of pick()'s wait, milliseconds (default 300000: five minutes, as in kable). */
  pickTimeout?: number;
  /** Most pick() calls that may wait at once across all ids (default 10000); more are refused at once. */
  maxPickWaiters?: number;
  /**
   * Overload detection (default off): with { maxEventLoopDelayMs }, the node turns DOING_SOMETHING while
   * its event loop lags beyond that, and RUNNING again once it recovers (see OverloadOptions).
   */
  busy?: OverloadOptions;
}

/** Defaults of the node options (see docs/configuration.md). */
export const DEFAULTS = {
  /** Milliseconds between periodic adverts. */
  advertiseInterval: 3000,
  /** nodeTimeout as a multiple of advertiseInterval. */
  nodeTimeoutFactor: 3.5,
  /** State updates sent per second before they are coalesced. */
  maxUpdatesPerSecond: 20,
  /** A bare node's pick() wait, milliseconds. */
  pickTimeout: 5 * 60 * 1000,
  /** pick() calls that may wait at once. */
  maxPickWaiters: 10_000,
  /** The namespace of nodes that give none. */
  namespace: 'default',
  /** UDP port of broadcast, multicast and unicast discovery. */
  discoveryPort: 5000,
} as const;
