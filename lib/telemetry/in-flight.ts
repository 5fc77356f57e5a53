import type { Meter, ObservableResult, ObservableUpDownCounter } from '@opentelemetry/api';
import { SYSTEM } from './conventions.js';

/** Patterns are caller-chosen on the server: past this many, methods with nothing in flight are forgotten. */
const MAX_METHODS = 10_000;

/**
 * Requests in flight by method, as an observable up-down counter: a request adds and subtracts in a Map,
 * and the SDK reads the counts when it collects. An up-down counter updated per request would cost two
 * attribute hashes in the SDK per request for a figure read once per export.
 */
export class InFlight {
  private readonly counts = new Map<string, number>();
  private instrument: ObservableUpDownCounter | undefined;
  private readonly report = (result: ObservableResult): void => {
    for (const [method, count] of this.counts) {
      result.observe(count, { 'rpc.system.name': SYSTEM, 'rpc.method': method });
    }
  };

  add(method: string, delta: 1 | -1): void {
    const count = (this.counts.get(method) ?? 0) + delta;
    this.counts.set(method, count);
    if (this.counts.size > MAX_METHODS) {
      for (const [name, n] of this.counts) if (n === 0) this.counts.delete(name);
    }
  }

  /** Reports on `meter` from now on (and no longer on the previous one). */
  bind(meter: Meter, name: string, description: string): void {
    this.instrument?.removeCallback(this.report);
    this.instrument = meter.createObservableUpDownCounter(name, { unit: '{request}', description });
    this.instrument.addCallback(this.report);
  }
}
