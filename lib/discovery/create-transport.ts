import { isIPv4 } from 'node:net';
import type { DiscoveryTransport } from '../node/discovery-transport.js';
import { KableOptionsError } from '../node/errors.js';
import { DEFAULTS, type DiscoveryOptions } from '../node/options.js';
import { parseKeys } from '../node/keys.js';
import type { UdpTarget } from './unicast-peers.js';
import { RedisTransport } from './redis.transport.js';
import { UdpTransport } from './udp.transport.js';

export interface TransportSettings {
  discovery: DiscoveryOptions | undefined;
  namespace: string;
  key: string | undefined;
  keys: string[] | undefined;
  /** Only listens (kable watch): sends nothing, so unicast needs no peers. */
  listenOnly?: boolean;
}

export const DISCOVERY_DEFAULTS = {
  mode: 'broadcast',
  broadcastAddress: '255.255.255.255',
  multicastAddress: '239.255.42.99',
  ttl: 1,
  redisUrl: 'redis://127.0.0.1:6379',
} as const;

const MODES = ['broadcast', 'multicast', 'unicast', 'redis'];

/**
 * Picks the discovery backend from the options, checking them first. Kept apart from the node so the
 * core never depends on a socket library: it only sees the DiscoveryTransport interface.
 */
export function createDiscoveryTransport(settings: TransportSettings): DiscoveryTransport {
  const discovery = settings.discovery ?? {};
  const keys = parseKeys(settings.key, settings.keys);
  if (discovery.transport !== undefined) return discovery.transport;
  const mode = discovery.mode ?? DISCOVERY_DEFAULTS.mode;
  if (!MODES.includes(mode)) {
    throw new KableOptionsError(`discovery.mode must be one of ${MODES.join(', ')}; got "${String(mode)}".`);
  }
  if (mode === 'redis') {
    const advertiseInterval = discovery.advertiseInterval ?? DEFAULTS.advertiseInterval;
    return new RedisTransport({
      url: discovery.url ?? DISCOVERY_DEFAULTS.redisUrl,
      namespace: settings.namespace,
      keys,
      nodeTimeout: discovery.nodeTimeout ?? Math.round(advertiseInterval * DEFAULTS.nodeTimeoutFactor),
    });
  }
  const port = discovery.port ?? DEFAULTS.discoveryPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new KableOptionsError(`discovery.port must be an integer from 1 to 65535; got ${String(port)}.`);
  }
  const iface = discovery.interface;
  if (iface !== undefined && !isIPv4(iface)) {
    throw new KableOptionsError(
      `discovery.interface must be an IPv4 address of this host, such as "10.0.0.5"; got "${iface}".`,
    );
  }
  const ttl = discovery.ttl ?? DISCOVERY_DEFAULTS.ttl;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) {
    throw new KableOptionsError(`discovery.ttl must be an integer from 0 to 255; got ${String(ttl)}.`);
  }
  const address =
    discovery.address ??
    (mode === 'multicast' ? DISCOVERY_DEFAULTS.multicastAddress : DISCOVERY_DEFAULTS.broadcastAddress);
  if (mode !== 'unicast' && !isIPv4(address)) {
    throw new KableOptionsError(`discovery.address must be an IPv4 address; got "${String(address)}".`);
  }
  if (mode === 'multicast' && !isMulticast(address)) {
    throw new KableOptionsError(
      `discovery.address "${address}" is not a multicast group (224.0.0.0 to 239.255.255.255).`,
    );
  }
  const peers =
    mode !== 'unicast' || (settings.listenOnly === true && discovery.peers === undefined)
      ? []
      : parsePeers(discovery.peers, port);
  const advertiseInterval = discovery.advertiseInterval ?? DEFAULTS.advertiseInterval;
  return new UdpTransport({
    mode,
    address,
    port,
    interface: iface,
    ttl,
    peers,
    ...(settings.listenOnly === true ? { listenOnly: true } : {}),
    namespace: settings.namespace,
    keys,
    advertiseInterval,
    nodeTimeout: discovery.nodeTimeout ?? Math.round(advertiseInterval * DEFAULTS.nodeTimeoutFactor),
  });
}

function isMulticast(address: string): boolean {
  const first = Number(address.split('.')[0]);
  return first >= 224 && first <= 239;
}

function parsePeers(peers: string[] | undefined, defaultPort: number): UdpTarget[] {
  if (!Array.isArray(peers) || peers.length === 0) {
    throw new KableOptionsError(
      'discovery.mode "unicast" needs discovery.peers, such as ["10.0.0.5:5000", "10.0.0.6:5000"].',
    );
  }
  return peers.map((peer) => {
    const match = typeof peer === 'string' ? /^([^:\s]+)(?::(\d+))?$/.exec(peer) : null;
    const port = match?.[2] === undefined ? defaultPort : Number(match[2]);
    if (match === null || port < 1 || port > 65535) {
      throw new KableOptionsError(`discovery.peers entry "${String(peer)}" must be "host" or "host:port".`);
    }
    return { host: match[1], port };
  });
}
