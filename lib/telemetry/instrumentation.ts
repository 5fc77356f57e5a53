import type {
  Counter,
  Histogram,
  Meter,
  MeterProvider,
  TextMapGetter,
  Tracer,
  UpDownCounter,
} from '@opentelemetry/api';
import type { InboundRequest, ReplyChannel } from '../data-plane/data-plane-server.js';
import type { CallerIdentity, Metadata } from '../data-plane/frames.js';
import type { KableNode } from '../node/kable-node.js';
import { InboundEventTrace, TracedReply } from './inbound-trace.js';
import { NodeMetrics } from './node-metrics.js';
import { OutboundTrace } from './outbound-trace.js';
import type { KableInstrumentation } from './telemetry.js';

export type OtelApi = typeof import('@opentelemetry/api');

/** The instrumentation scope every span and metric of Kable carries. */
export const SCOPE = 'nestjs-kable';

/** Durations in seconds, as the RPC conventions ask; boundaries from 0.5 ms to 10 s. */
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];

/** The instruments the request paths record to; recreated when a new meter provider is registered. */
export interface Instruments {
  clientDuration: Histogram;
  serverDuration: Histogram;
  producerDuration: Histogram;
  consumerDuration: Histogram;
  clientActive: UpDownCounter;
  serverActive: UpDownCounter;
  retries: Counter;
  refusals: Counter;
}

/** Metadata values are whatever the caller sent: only strings are trace context. */
export const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
};

export function createInstrumentation(api: OtelApi): KableInstrumentation {
  return new Instrumentation(api);
}

class Instrumentation implements KableInstrumentation {
  /** A proxy tracer: it follows a tracer provider registered later. */
  readonly tracer: Tracer;
  instruments!: Instruments;
  private meterProvider: MeterProvider | undefined;
  private readonly nodeMetrics: NodeMetrics;

  constructor(readonly api: OtelApi) {
    this.tracer = api.trace.getTracer(SCOPE);
    this.nodeMetrics = new NodeMetrics();
    this.refresh();
  }

  refresh(): void {
    // The metrics API has no proxy: a meter taken before the SDK registered stays a no-op, so take a new
    // one whenever the global provider changed (checked at each client or server start).
    const provider = this.api.metrics.getMeterProvider();
    if (provider === this.meterProvider) return;
    this.meterProvider = provider;
    const meter = provider.getMeter(SCOPE);
    this.instruments = createInstruments(meter);
    this.nodeMetrics.bind(meter);
  }

  outbound(kind: 'request' | 'event', pattern: string, metadata: Metadata | undefined): OutboundTrace {
    return new OutboundTrace(this, kind, pattern, metadata);
  }

  inboundRequest(
    request: InboundRequest,
    reply: ReplyChannel,
    node: KableNode,
    serve: (reply: ReplyChannel) => (() => void) | void,
  ): (() => void) | void {
    const traced = new TracedReply(this, request, reply, node);
    let cancel: (() => void) | void;
    try {
      cancel = this.api.context.with(traced.context, serve, undefined, traced);
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
    const trace = new InboundEventTrace(this, pattern, metadata, caller, node);
    let handled: Promise<unknown> | void;
    try {
      handled = this.api.context.with(trace.context, handle);
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
    clientActive: meter.createUpDownCounter('kable.client.requests.active', {
      unit: '{request}',
      description: 'Kable requests sent and not yet answered.',
    }),
    serverActive: meter.createUpDownCounter('kable.server.requests.active', {
      unit: '{request}',
      description: 'Kable requests being handled.',
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
