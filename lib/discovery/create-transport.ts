import type { DiscoveryTransport } from '../node/discovery-transport.js';
import { KableOptionsError } from '../node/errors.js';
import type { DiscoveryOptions } from '../node/options.js';

export interface TransportSettings {
  discovery: DiscoveryOptions | undefined;
  namespace: string;
  key: string | undefined;
  keys: string[] | undefined;
}

/**
 * Picks the discovery backend from the options. Kept apart from the node so the core never depends
 * on a socket library: it only sees the DiscoveryTransport interface.
 */
export function createDiscoveryTransport(settings: TransportSettings): DiscoveryTransport {
  const discovery = settings.discovery ?? {};
  if (discovery.transport !== undefined) return discovery.transport;
  throw new KableOptionsError(
    `discovery.mode "${discovery.mode ?? 'broadcast'}" is not available in this build; pass discovery.transport.`,
  );
}
