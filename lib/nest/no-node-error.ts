import { KableError } from '../node/errors.js';
import type { KableNode } from '../node/kable-node.js';
import type { PeerRecord } from '../node/peer-record.js';
import { formatVersion, PROTOCOL_VERSION } from '../node/protocol-version.js';

/** Services named in a KABLE_NO_NODE message, at most; the rest are counted. */
const LISTED_SERVICES = 20;

/**
 * KABLE_NO_NODE for a wait that ended without a RUNNING node serving `what` (a pattern, an event), naming
 * the services this node knows and their states, so the caller can tell a typo in a pattern from a
 * service that is down or busy: "No RUNNING node handles pattern "sum" (waited 100 ms, option:
 * pickTimeout). Known services: math (2 RUNNING), orders (1 STOPPED)."; and how many RUNNING nodes
 * could not be asked for their pattern list (they may serve it). With `incompatible` (RUNNING nodes of
 * another major protocol version that may serve it), it names them and their version: the request
 * failed at once, since only a node of this caller's version can serve it.
 */
export function noNodeError(
  node: KableNode,
  what: string,
  waited: number,
  option: 'pickTimeout' | 'timeout',
  target: string | undefined,
  unlisted = 0,
  incompatible: readonly PeerRecord[] = [],
): KableError {
  const services = new Map<string, Map<string, number>>();
  for (const peer of node.peers()) {
    let states = services.get(peer.id);
    if (states === undefined) services.set(peer.id, (states = new Map()));
    states.set(peer.state, (states.get(peer.state) ?? 0) + 1);
  }
  const described = [...services]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, states]) => `${id} (${[...states].map(([state, n]) => `${n} ${state}`).join(', ')})`);
  const listed =
    described.length === 0
      ? 'none'
      : described.slice(0, LISTED_SERVICES).join(', ') +
        (described.length > LISTED_SERVICES ? ` and ${described.length - LISTED_SERVICES} more` : '');
  const among = target === undefined ? '' : ` of service "${target}"`;
  // A node whose pattern list could not be fetched (its data plane refused or did not answer) may serve it.
  const unknown =
    unlisted === 0
      ? ''
      : ` The pattern lists of ${unlisted} RUNNING node(s) could not be fetched over the data plane.`;
  if (incompatible.length > 0) {
    const named = incompatible
      .slice(0, LISTED_SERVICES)
      .map((peer) => `${peer.id} at ${peer.host}:${peer.port} (incompatible ${formatVersion(peer.protocol)})`)
      .join(', ');
    const more =
      incompatible.length > LISTED_SERVICES ? ` and ${incompatible.length - LISTED_SERVICES} more` : '';
    const ours = formatVersion(PROTOCOL_VERSION);
    return new KableError(
      'KABLE_NO_NODE',
      `No RUNNING node${among} that speaks protocol v${PROTOCOL_VERSION.major}.x handles ${what}; ` +
        `this caller (${ours}) cannot use the ${incompatible.length} that may: ${named}${more}. ` +
        `Start a node of protocol v${PROTOCOL_VERSION.major}.x, or upgrade this caller. Known services: ${listed}.${unknown}`,
    );
  }
  return new KableError(
    'KABLE_NO_NODE',
    `No RUNNING node${among} handles ${what} (waited ${waited} ms, option: ${option}). Known services: ${listed}.${unknown}`,
  );
}
