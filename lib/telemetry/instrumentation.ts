import type { Meter, MeterProvider, Tracer, TracerProvider } from '@opentelemetry/api';
import type { InboundRequest, ReplyChannel } from '../data-plane/data-plane-server.js';
import type { CallerIdentity, Metadata } from '../data-plane/frames.js';
import type { KableNode } from '../node/kable-node.js';
import { InboundEventTrace, TracedReply } from './inbound-trace.js';
import { InFlight } from './in-flight.js';
import { NodeMetrics } from './node-metrics.js';
import { OutboundTrace } from './outbound-trace.js';
import type { KableInstrumentation } from './hooks.js';
import type { Instruments, OtelApi, Recording } from './recording.js';

/** The instrumentation scope every span and metric of Kable carries. */
export const SCOPE = 'nestjs-kable';

/** Durations in seconds, as the RPC conventions ask; boundaries from 0.5 ms to 10 s. */
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

export function createInstrumentation(api: OtelApi): KableInstrumentation {
  return new Instrumentation(api);
}

class Instrumentation implements KableInstrumentation, Recording {
  /** A proxy tracer: it follows a tracer provider registered later. */
  readonly tracer: Tracer;
  instruments!: Instruments;
  /** Requests in flight by method, reported when the SDK collects (no per-request metric call). */
  readonly inFlight = { client: new InFlight(), server: new InFlight() };
  /** False while the meter is the API's no-op one: requests then skip every metric. */
  metering = false;
  private meterProvider: MeterProvider | undefined;
  private readonly nodeMetrics: NodeMetrics;
  /** What the API hands out when no SDK is registered, to tell "nothing to record" in one comparison. */
  private readonly noopTracerProvider: TracerProvider;
  private readonly noopMeter: new () => Meter;

  constructor(readonly api: OtelApi) {
    this.tracer = api.trace.getTracer(SCOPE);
    this.noopTracerProvider = new api.ProxyTracerProvider().getDelegate();
    this.noopMeter = api.createNoopMeter().constructor as new () => Meter;
    this.nodeMetrics = new NodeMetrics();
    this.refresh();
  }

  /**
   * True once a tracer provider is registered (checked per request: the API's proxy tracer follows a
   * provider registered late). Without one, and without metrics, a request makes no span, no context and
   * no attribute: the API installed with no SDK costs a function call.
   */
  tracing(): boolean {
    const provider = this.api.trace.getTracerProvider() as { getDelegate?: () => TracerProvider };
    return typeof provider.getDelegate !== 'function' || provider.getDelegate() !== this.noopTracerProvider;
  }

  refresh(): void {
    // The metrics API has no proxy: a meter taken before the SDK registered stays a no-op, so take a new
    // one whenever the global provider changed (checked at each client or server start).
    const provider = this.api.metrics.getMeterProvider();
    if (provider === this.meterProvider) return;
    this.meterProvider = provider;
    const meter = provider.getMeter(SCOPE);
    this.metering = !(meter instanceof this.noopMeter);
    this.instruments = createInstruments(meter);
    this.inFlight.client.bind(
      meter,
      'kable.client.requests.active',
      'Kable requests sent and not yet answered.',
    );
    this.inFlight.server.bind(meter, 'kable.server.requests.active', 'Kable requests being handled.');
    this.nodeMetrics.bind(meter);
  }

  outbound(
    kind: 'request' | 'event',
    pattern: string,
    metadata: Metadata | undefined,
  ): OutboundTrace | undefined {
    const tracing = this.tracing();
    if (!tracing && !this.metering) return undefined;
    return new OutboundTrace(this, kind, pattern, metadata, tracing);
  }

  inboundRequest(
    request: InboundRequest,
    reply: ReplyChannel,
    node: KableNode,
    serve: (reply: ReplyChannel) => (() => void) | void,
  ): (() => void) | void {
    const tracing = this.tracing();
    if (!tracing && !this.metering) return serve(reply);
    const traced = new TracedReply(this, request, reply, node, tracing);
    let cancel: (() => void) | void;
    try {
      cancel =
        traced.context === undefined
          ? serve(traced)
          : this.api.context.with(traced.context, serve, undefined, traced);
    } catch (error) {
      traced.error(error);
      throw error;
    }
    if (reply.closed) return cancel;
    // Always hand back a cancel, so that a cancelled request ends its span even if `serve` gave none.
    return () => {
      traced.cancelled();
      cancel?.();
    };
  }

  inboundEvent(
    pattern: string,
    metadata: Metadata | undefined,
    caller: CallerIdentity | undefined,
    node: KableNode,
    handle: () => Promise<unknown> | void,
  ): void {
    const tracing = this.tracing();
    if (!tracing && !this.metering) {
      handle();
      return;
    }
    const trace = new InboundEventTrace(this, pattern, metadata, caller, node, tracing);
    let handled: Promise<unknown> | void;
    try {
      handled = trace.context === undefined ? handle() : this.api.context.with(trace.context, handle);
    } catch (error) {
      trace.end(error);
      throw error;
    }
    Promise.resolve(handled).then(
      () => trace.end(),
      (error: unknown) => trace.end(error),
    );
  }

  observe(node: KableNode, extra?: () => Record<string, number>): () => void {
    return this.nodeMetrics.observe(node, extra);
  }
}

export type { Instrumentation };

function createInstruments(meter: Meter): Instruments {
  const seconds = { unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS } };
  return {
    clientDuration: meter.createHistogram('rpc.client.call.duration', {
      ...seconds,
      description: 'Duration of outgoing Kable requests (send), from the call to the last reply.',
    }),
    serverDuration: meter.createHistogram('rpc.server.call.duration', {
      ...seconds,
      description: 'Duration of incoming Kable requests, from arrival to the last reply sent.',
    }),
    producerDuration: meter.createHistogram('messaging.client.operation.duration', {
      ...seconds,
      description: 'Duration of Kable emits, until every target service had the event written.',
    }),
    consumerDuration: meter.createHistogram('messaging.process.duration', {
      ...seconds,
      description: 'Duration of Kable event handlers.',
    }),
    retries: meter.createCounter('kable.client.retries', {
      unit: '{retry}',
      description: 'Requests sent to another replica after an attempt failed before reaching a handler.',
    }),
    refusals: meter.createCounter('kable.client.refusals', {
      unit: '{refusal}',
      description: 'Refusals received (the replica was not RUNNING or too busy).',
    }),
  };
}
