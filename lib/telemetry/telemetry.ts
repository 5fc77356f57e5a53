import type { ReplyChannel, InboundRequest } from '../data-plane/data-plane-server.js';
import type { CallerIdentity, Metadata } from '../data-plane/frames.js';
import type { KableNode } from '../node/kable-node.js';
import type { PeerRecord } from '../node/peer-record.js';

/**
 * OpenTelemetry is optional. `@opentelemetry/api` is an optional peer dependency: when it is installed,
 * Kable instruments itself through it (and whatever SDK the application registered receives the spans
 * and metrics); when it is not, nothing here loads and nothing changes.
 *
 * How it loads: the first KableClientProxy or KableServer to start calls `loadTelemetry()`, which
 * `import()`s `@opentelemetry/api` and then `./instrumentation.js` (the only files that import OTel).
 * A dynamic `import()` works the same from an ES module and from a CommonJS build, and it resolves once
 * per process; a missing package only leaves the state "absent". The hot path then reads one variable,
 * `telemetry.active`, and does nothing more when it is undefined.
 *
 * Two copies of the API (the ESM one Kable imports, the CommonJS one a `require`-based app registers its
 * SDK with) share one registry: the API keeps its globals on `globalThis`, so either sees the SDK.
 */
export interface Telemetry {
  /** The instrumentation, once `@opentelemetry/api` loaded; undefined before and without it. */
  active: KableInstrumentation | undefined;
  /** 'idle' before any client or server started; 'absent' when the package is not installed. */
  state: 'idle' | 'loading' | 'absent' | 'active';
}

export const telemetry: Telemetry = { active: undefined, state: 'idle' };

let loading: Promise<void> | undefined;

/**
 * Loads the instrumentation if `@opentelemetry/api` is installed; resolves (never rejects) once decided.
 * Each call also picks up a meter provider registered since the last one.
 */
export function loadTelemetry(): Promise<void> {
  if (telemetry.active !== undefined) {
    telemetry.active.refresh();
    return Promise.resolve();
  }
  loading ??= (async () => {
    telemetry.state = 'loading';
    let api: typeof import('@opentelemetry/api');
    try {
      // The specifier is a variable so that bundlers do not try to include the optional package.
      api = (await import(OTEL_API)) as typeof import('@opentelemetry/api');
    } catch {
      // Not installed (or not loadable): Kable runs uninstrumented, exactly as without OpenTelemetry.
      telemetry.state = 'absent';
      return;
    }
    const { createInstrumentation } = await import('./instrumentation.js');
    telemetry.active = createInstrumentation(api);
    telemetry.state = 'active';
  })();
  return loading;
}

const OTEL_API = '@opentelemetry/api';

/** What the Nest face calls; implemented in instrumentation.ts, typed here so callers import no OTel. */
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
