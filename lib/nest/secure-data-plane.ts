import { secureChannel, type SecureChannel, type TlsFiles } from '../data-plane/secure-channel.js';
import type { KableNode } from '../node/kable-node.js';

/** The data plane's protection for a node: mutual TLS with `tls`, TLS-PSK with the node's key, else plain. */
export function channelFor(node: KableNode, tls: TlsFiles | undefined): SecureChannel {
  return secureChannel({ keys: node.clusterKeys(), namespace: node.namespace, tls });
}
