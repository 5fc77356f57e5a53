import { createDiscoveryTransport } from './discovery/create-transport.js';
import { KableNode } from './node/kable-node.js';
import { KableSentinel, type SentinelOptions } from './node/sentinel.js';
import type { KableOptions } from './node/options.js';
import { validateId, validateNodeOptions } from './node/validate-options.js';

/**
 * Creates a node: the composition root that picks the discovery backend from `options.discovery`
 * (the core itself knows only the DiscoveryTransport interface). Throws KableOptionsError at once on
 * options that cannot work.
 */
export function kable(id: string, options: KableOptions = {}): KableNode {
  validateId(id);
  const resolved = validateNodeOptions(options);
  const transport = createDiscoveryTransport({
    discovery: options.discovery,
    namespace: resolved.namespace,
    key: options.key,
    keys: options.keys,
  });
  return new KableNode(id, options, transport);
}

/**
 * Creates a sentinel: a node whose state follows a probe of an external resource (RUNNING while it
 * answers, STOPPED when not). Call `start()` to join and begin probing.
 */
export function sentinel(id: string, options: SentinelOptions & KableOptions): KableSentinel {
  const { probe, interval, probeTimeout, ...nodeOptions } = options;
  return new KableSentinel(kable(id, nodeOptions), { probe, interval, probeTimeout });
}
