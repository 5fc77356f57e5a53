import type { Counter, Histogram, TextMapGetter, Tracer } from '@opentelemetry/api';
import type { Metadata } from '../data-plane/frames.js';
import type { InFlight } from './in-flight.js';

/**
 * What a request's span and metrics record to: the instrumentation, as the traces see it. Kept apart from
 * instrumentation.ts (which creates the traces) so that no import goes in a circle.
 */
export interface Recording {
  readonly api: OtelApi;
  readonly tracer: Tracer;
  readonly instruments: Instruments;
  readonly inFlight: { client: InFlight; server: InFlight };
  /** False while the meter is the API's no-op one: requests then skip every metric. */
  readonly metering: boolean;
}

export type OtelApi = typeof import('@opentelemetry/api');

/** The instruments the request paths record to; recreated when a new meter provider is registered. */
export interface Instruments {
  clientDuration: Histogram;
  serverDuration: Histogram;
  producerDuration: Histogram;
  consumerDuration: Histogram;
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
