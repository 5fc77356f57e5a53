import type { ReplyChannel, InboundRequest } from '../data-plane/data-plane-server.js';
import type { CallerIdentity, Metadata } from '../data-plane/frames.js';
import type { KableNode } from '../node/kable-node.js';
import type { PeerRecord } from '../node/peer-record.js';

/** What the Nest face calls; implemented in instrumentation.ts, typed here so callers import no OTel
 * (and apart from telemetry.ts, which loads instrumentation.ts, so that no import goes in a circle). */
export interface KableInstrumentation {
  /** Picks up a meter provider registered after the instrumentation loaded. */
  refresh(): void;
  /**
   * Starts the CLIENT span of one `send()` (or the PRODUCER span of one `emit()`); undefined while no
   * SDK is registered (nothing would record it).
   */
  outbound(
    kind: 'request' | 'event',
    pattern: string,
    metadata: Metadata | undefined,
  ): OutboundTrace | undefined;
  /**
   * Runs `serve` for one inbound request inside its SERVER span (the handler's spans are its children),
   * with a reply channel that ends the span when the reply ends; returns what `serve` returned, a cancel.
   */
  inboundRequest(
    request: InboundRequest,
    reply: ReplyChannel,
    node: KableNode,
    serve: (reply: ReplyChannel) => (() => void) | void,
  ): (() => void) | void;
  /** Runs one event handler inside its CONSUMER span, ended when the returned promise settles. */
  inboundEvent(
    pattern: string,
    metadata: Metadata | undefined,
    caller: CallerIdentity | undefined,
    node: KableNode,
    handle: () => Promise<unknown> | void,
  ): void;
  /**
   * Reports the node's peers and counters as metrics until the returned function is called; `extra`
   * adds a client's connection-pool counters (bytes).
   */
  observe(node: KableNode, extra?: () => Record<string, number>): () => void;
}

/** One outbound request or event, from the caller's side. Every method is safe to call after the end. */
export interface OutboundTrace {
  /** The metadata to send: the caller's, plus the trace context (traceparent, tracestate, baggage). */
  readonly metadata: Metadata | undefined;
  /** Sent to this peer (again, after a retry). */
  attempt(peer: PeerRecord): void;
  /** The attempt failed before reaching a handler and the request goes to the next replica. */
  retry(error: unknown): void;
  /** One reply value arrived. */
  value(): void;
  /** The request ended: completed, or failed with `error`. */
  end(error?: unknown): void;
  /** The caller unsubscribed before the end. */
  cancel(): void;
}
