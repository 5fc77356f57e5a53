import type { Attributes, Span } from '@opentelemetry/api';
import type { Metadata } from '../data-plane/frames.js';
import type { PeerRecord } from '../node/peer-record.js';
import { EVENT, STATUS, SYSTEM, messageOf, statusOf } from './conventions.js';
import type { Recording } from './recording.js';
import type { OutboundTrace as Hooks } from './hooks.js';

// Attribute objects on the request path are written as literals with their names spelled out (see
// conventions.ts for what each means): V8 builds those from a template, where computed keys cost a
// dictionary object per request.

/**
 * One `send()` (a CLIENT span) or `emit()` (a PRODUCER span), from the call to the last reply, with
 * the trace context added to the request metadata. Retries and refusals are events of the one span;
 * the replica that answered is in its attributes. Made only when an SDK records something.
 */
export class OutboundTrace implements Hooks {
  readonly metadata: Metadata | undefined;
  /** Undefined when only metrics are registered. */
  private readonly span: Span | undefined;
  private readonly recording: boolean;
  private readonly startedAt: number;
  /** Whether metrics were on when it started: what it added to the in-flight count, it takes back. */
  private readonly metered: boolean;
  private peer: PeerRecord | undefined;
  private attempts = 0;
  private values = 0;
  private ended = false;
  private cancelling = false;

  constructor(
    private readonly otel: Recording,
    private readonly kind: 'request' | 'event',
    private readonly pattern: string,
    metadata: Metadata | undefined,
    tracing: boolean,
  ) {
    this.metered = otel.metering;
    this.startedAt = this.metered ? performance.now() : 0;
    if (this.metered && kind === 'request') {
      otel.inFlight.client.add(pattern, 1);
    }
    if (!tracing) {
      this.span = undefined;
      this.recording = false;
      this.metadata = metadata;
      return;
    }
    const { api } = otel;
    const parent = api.context.active();
    this.span =
      kind === 'request'
        ? otel.tracer.startSpan(
            pattern,
            {
              kind: api.SpanKind.CLIENT,
              attributes: { 'rpc.system.name': SYSTEM, 'rpc.system': SYSTEM, 'rpc.method': pattern },
            },
            parent,
          )
        : otel.tracer.startSpan(
            `send ${pattern}`,
            {
              kind: api.SpanKind.PRODUCER,
              attributes: {
                'messaging.system': SYSTEM,
                'messaging.operation.type': 'send',
                'messaging.destination.name': pattern,
              },
            },
            parent,
          );
    this.recording = this.span.isRecording();
    // Injected into a fresh carrier, so the caller's metadata object is never changed and is sent as it
    // is when there is no trace context to add (no propagator registered).
    const carrier: Record<string, string> = {};
    api.propagation.inject(api.trace.setSpan(parent, this.span), carrier);
    let added = false;
    for (const _ in carrier) {
      added = true;
      break;
    }
    this.metadata = added ? { ...metadata, ...carrier } : metadata;
  }

  attempt(peer: PeerRecord): void {
    this.attempts++;
    this.peer = peer;
    if (!this.recording) return;
    this.span!.setAttributes({
      'server.address': peer.host,
      'server.port': peer.port,
      'kable.node.id': peer.id,
      'kable.node.iid': peer.iid,
    });
  }

  retry(error: unknown): void {
    if (this.ended) return;
    const code = statusOf(error);
    const refused = code === 'KABLE_REFUSED';
    if (this.metered) {
      const { instruments } = this.otel;
      if (refused) instruments.refusals.add(1, { 'rpc.system.name': SYSTEM, 'rpc.method': this.pattern });
      instruments.retries.add(1, {
        'rpc.system.name': SYSTEM,
        'rpc.method': this.pattern,
        'error.type': code,
      });
    }
    if (!this.recording) return;
    this.span!.addEvent(refused ? EVENT.REFUSED : EVENT.RETRY, {
      'error.type': code,
      'kable.node.id': this.peer?.id ?? '',
      'kable.node.iid': this.peer?.iid ?? '',
      'exception.message': messageOf(error) ?? '',
    });
  }

  value(): void {
    this.values++;
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.finish(error === undefined ? STATUS.OK : statusOf(error), error);
  }

  cancel(): void {
    if (this.ended || this.cancelling) return;
    // A reply's last value reaches the subscriber just before its completion; firstValueFrom unsubscribes
    // on that value. Wait for the completion that may follow in the same tick before calling it a cancel.
    this.cancelling = true;
    queueMicrotask(() => {
      if (this.ended) return;
      this.ended = true;
      this.finish(STATUS.CANCELLED, 'the caller unsubscribed before the reply ended');
    });
  }

  private finish(status: string, error: unknown): void {
    const failed = status !== STATUS.OK;
    if (this.metered) this.record(status, failed);
    if (this.span === undefined) return;
    if (this.recording) {
      const span = this.span;
      span.setAttribute('rpc.response.status_code', status);
      span.setAttribute('kable.attempts', this.attempts);
      if (this.kind === 'request') span.setAttribute('kable.response.values', this.values);
      if (failed) {
        span.setAttribute('error.type', status);
        const message = messageOf(error);
        span.setStatus({
          code: this.otel.api.SpanStatusCode.ERROR,
          message: message === undefined ? status : `${status}: ${message}`,
        });
      }
    }
    this.span.end();
  }

  private record(status: string, failed: boolean): void {
    const { instruments } = this.otel;
    const seconds = (performance.now() - this.startedAt) / 1000;
    if (this.kind === 'event') {
      const attributes: Attributes = {
        'messaging.system': SYSTEM,
        'messaging.destination.name': this.pattern,
      };
      if (failed) attributes['error.type'] = status;
      instruments.producerDuration.record(seconds, attributes);
      return;
    }
    if (status === 'KABLE_REFUSED') {
      instruments.refusals.add(1, { 'rpc.system.name': SYSTEM, 'rpc.method': this.pattern });
    }
    this.otel.inFlight.client.add(this.pattern, -1);
    const attributes: Attributes = {
      'rpc.system.name': SYSTEM,
      'rpc.method': this.pattern,
      'rpc.response.status_code': status,
    };
    if (failed) attributes['error.type'] = status;
    if (this.peer !== undefined) attributes['kable.node.id'] = this.peer.id;
    instruments.clientDuration.record(seconds, attributes);
  }
}
