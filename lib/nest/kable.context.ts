import { BaseRpcContext } from '@nestjs/microservices';
import type { KableNode } from '../node/kable-node.js';
import type { PeerRecord } from '../node/peer-record.js';
import { brand } from '../node/brand.js';

/** Who called, as the calling node said in its connection's hello (empty for anonymous callers). */
export interface KableCaller {
  /** The caller node's service id. */
  id?: string;
  /** The caller node's instance id. */
  iid?: string;
}

/** The node that serves a request, as `KableContext.getServingNode()` gives it. */
export interface KableServingNode {
  /** Service id. */
  id: string;
  /** Instance id. */
  iid: string;
  /** Data-plane address. */
  host: string;
  /** Data-plane port. */
  port: number;
}

type KableContextArgs = [
  pattern: string,
  metadata: Record<string, unknown> | undefined,
  caller: KableCaller,
  serving: KableServingNode,
  node: KableNode,
];

/** What `@Ctx()` gives a Kable handler: the pattern, the packet metadata, who called and who serves. */
export class KableContext extends BaseRpcContext<KableContextArgs> {
  static {
    brand(this, 'KableContext');
  }

  /** The pattern of the request, as a route string (`{"cmd":"sum"}` for an object pattern). */
  getPattern(): string {
    return this.args[0];
  }

  /** Nest 12 packet metadata (set by the client's dispatch hook); undefined when none was sent. */
  getMetadata(): Record<string, unknown> | undefined {
    return this.args[1];
  }

  /** Who called: the calling node's id and instance id. */
  getCaller(): KableCaller {
    return this.args[2];
  }

  /** The node serving this request. */
  getServingNode(): KableServingNode {
    return this.args[3];
  }

  /** The node serving this request: what `@KableDoing` and the serving guard act on. */
  getNode(): KableNode {
    return this.args[4];
  }
}

export function servingNode(node: { id: string; iid: string; host: string; port: number }): KableServingNode {
  return { id: node.id, iid: node.iid, host: node.host, port: node.port };
}

export type { PeerRecord };
