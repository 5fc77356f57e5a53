import { Inject, Injectable, Optional } from '@nestjs/common';
import type { KableNode } from '../node/kable-node.js';
import type { KableClientProxy } from './kable.client.js';
import { KABLE_NODE } from './kable.constants.js';

/** What KableHealthIndicator reports under its key. */
export interface KableHealthDetails {
  /** 'up' when the node is RUNNING and every pattern asked about has a RUNNING server. */
  status: 'up' | 'down';
  /** The node's state. */
  state: string;
  /** The reason of the node's state, if any. */
  reason?: string;
  /** How many other nodes this node knows. */
  peers: number;
  /** For each pattern asked about: how many RUNNING nodes serve it now. */
  patterns?: Record<string, number>;
}

/** Options of `KableHealthIndicator.check()`. */
export interface KableHealthOptions {
  /** The node to report on (default: KableModule's shared node). */
  node?: KableNode;
  /** Report, for these message patterns, whether a RUNNING node serves them (through this client). */
  client?: KableClientProxy;
  /** Message patterns that must each have a RUNNING server (with `client`). */
  patterns?: unknown[];
}

/**
 * A health indicator in @nestjs/terminus' result format ({ [key]: { status, ... } }), without importing
 * terminus (an optional peer): `health.check([() => kableHealth.check('kable', { client, patterns })])`.
 * Up when the node is RUNNING and every listed pattern has at least one RUNNING server.
 */
@Injectable()
export class KableHealthIndicator {
  constructor(@Optional() @Inject(KABLE_NODE) private readonly shared?: KableNode) {}

  /** Reports on the node under `key`, in terminus' format: `{ [key]: { status, state, peers, patterns } }`. */
  check(key = 'kable', options: KableHealthOptions = {}): Record<string, KableHealthDetails> {
    const node = options.node ?? options.client?.unwrap<KableNode>() ?? this.shared;
    if (node === undefined) {
      return { [key]: { status: 'down', state: 'UNKNOWN', reason: 'no Kable node to report on', peers: 0 } };
    }
    const { state, reason } = node.state;
    const details: KableHealthDetails = { status: 'up', state, peers: node.peers().length };
    if (reason !== undefined) details.reason = reason;
    let healthy = state === 'RUNNING';
    if (options.patterns !== undefined && options.client !== undefined) {
      details.patterns = {};
      for (const pattern of options.patterns) {
        const count = options.client.nodesFor(pattern).length;
        details.patterns[typeof pattern === 'string' ? pattern : JSON.stringify(pattern)] = count;
        if (count === 0) healthy = false;
      }
    }
    details.status = healthy ? 'up' : 'down';
    return { [key]: details };
  }
}
