import type { Attributes, Context, Span } from '@opentelemetry/api';
import type { InboundRequest, ReplyChannel } from '../data-plane/data-plane-server.js';
import type { CallerIdentity, Metadata } from '../data-plane/frames.js';
import type { KableNode } from '../node/kable-node.js';
import { NO_MESSAGE_HANDLER } from '../nest/kable.constants.js';
import { EVENT, STATUS, SYSTEM, messageOf } from './conventions.js';
import { metadataGetter, type Recording } from './recording.js';

// Attribute names are spelled out in literals on the request path (see outbound-trace.ts for why).

/** The server span with the caller's trace context from the request metadata as its parent. */
function startSpan(
  otel: Recording,
  name: string,
  kind: 'server' | 'consumer',
  metadata: Metadata | undefined,
  attributes: Attributes,
  node: KableNode,
  caller: CallerIdentity | undefined,
): [Span, Context] {
  const { api } = otel;
  const parent =
    metadata === undefined
      ? api.ROOT_CONTEXT
      : api.propagation.extract(api.ROOT_CONTEXT, metadata, metadataGetter);
  attributes['server.address'] = node.host;
  attributes['server.port'] = node.port;
  attributes['kable.node.id'] = node.id;
  attributes['kable.node.iid'] = node.iid;
  if (caller !== undefined) {
    attributes['kable.caller.id'] = caller.id;
    attributes['kable.caller.iid'] = caller.iid;
  }
  const span = otel.tracer.startSpan(
    name,
    { kind: kind === 'server' ? api.SpanKind.SERVER : api.SpanKind.CONSUMER, attributes },
    parent,
  );
  return [span, api.trace.setSpan(parent, span)];
}

/**
 * One request on the serving side: a reply channel in front of the data plane's that ends the SERVER
 * span and records the duration when the reply ends. Its `context` (with the span) is what the handler
 * runs in; undefined when only metrics are registered.
 */
export class TracedReply implements ReplyChannel {
  readonly context: Context | undefined;
  private readonly span: Span | undefined;
  private readonly startedAt: number;
  /** Whether metrics were on when it started: what it added to the in-flight count, it takes back. */
  private readonly metered: boolean;
  private values = 0;
  private ended = false;

  constructor(
    private readonly otel: Recording,
    private readonly request: InboundRequest,
    private readonly inner: ReplyChannel,
    node: KableNode,
    tracing: boolean,
  ) {
    this.metered = otel.metering;
    this.startedAt = this.metered ? performance.now() : 0;
    if (this.metered) {
      otel.inFlight.server.add(request.pattern, 1);
    }
    if (tracing) {
      const attributes = { 'rpc.system.name': SYSTEM, 'rpc.system': SYSTEM, 'rpc.method': request.pattern };
      [this.span, this.context] = startSpan(
        otel,
        request.pattern,
        'server',
        request.metadata,
        attributes,
        node,
        request.caller,
      );
    }
  }

  get closed(): boolean {
    return this.inner.closed;
  }

  next(value: unknown, last?: boolean): void {
    if (this.inner.closed) return;
    this.inner.next(value, last);
    // Counted once sent: a value replaced by the data plane's error did not reach the caller.
    if (this.replaced()) return;
    this.values++;
    if (last === true) this.finish(STATUS.OK);
  }

  error(error: unknown): void {
    if (this.inner.closed) return;
    this.inner.error(error);
    if (this.replaced()) return;
    this.finish(error === NO_MESSAGE_HANDLER ? STATUS.NO_HANDLER : STATUS.HANDLER_ERROR, error);
  }

  complete(): void {
    if (this.inner.closed) return;
    this.inner.complete();
    this.finish(STATUS.OK);
  }

  refuse(reason: string): void {
    if (this.inner.closed) return;
    this.inner.refuse(reason);
    this.span?.addEvent(EVENT.REFUSED, { 'kable.reason': reason });
    this.finish('KABLE_REFUSED');
  }

  /** The caller cancelled or its connection closed. Not a server error (as gRPC's CANCELLED). */
  cancelled(): void {
    // The data plane cancels the handler after replacing its reply by an error: that error is the end.
    if (this.ended || this.replaced()) return;
    this.span?.addEvent(EVENT.CANCELLED);
    this.finish(STATUS.CANCELLED);
  }

  /**
   * Ends the span with the data plane's own error if it replaced the reply (too large, unencodable, a
   * stream cut by back-pressure): the caller got that error, not the value or a cancel. True if it did.
   */
  private replaced(): boolean {
    const replacedBy = this.inner.replacedBy;
    if (replacedBy === undefined) return false;
    this.finish(replacedBy.code, replacedBy, true);
    return true;
  }

  private finish(status: string, error?: unknown, replaced = false): void {
    if (this.ended) return;
    this.ended = true;
    // A pattern nobody serves is whatever a caller chose: keep it out of the metrics' attributes.
    const unknown = status === STATUS.NO_HANDLER;
    const failed = replaced || status === STATUS.HANDLER_ERROR || unknown;
    if (this.metered) {
      const { instruments } = this.otel;
      const pattern = this.request.pattern;
      this.otel.inFlight.server.add(pattern, -1);
      const attributes: Attributes = {
        'rpc.system.name': SYSTEM,
        'rpc.method': unknown ? '_OTHER' : pattern,
        'rpc.response.status_code': status,
      };
      if (failed) attributes['error.type'] = status;
      instruments.serverDuration.record((performance.now() - this.startedAt) / 1000, attributes);
    }
    const span = this.span;
    if (span === undefined) return;
    if (span.isRecording()) {
      span.setAttribute('rpc.response.status_code', status);
      span.setAttribute('kable.response.values', this.values);
      if (unknown) {
        span.setAttribute('rpc.method', '_OTHER');
        span.setAttribute('rpc.method_original', this.request.pattern);
      }
      if (failed) {
        span.setAttribute('error.type', status);
        span.setStatus({ code: this.otel.api.SpanStatusCode.ERROR, message: messageOf(error) ?? status });
      }
    }
    span.end();
  }
}

/** The CONSUMER span of one event handler, ended when the handler settles. */
export class InboundEventTrace {
  readonly context: Context | undefined;
  private readonly span: Span | undefined;
  private readonly startedAt: number;
  private ended = false;
  /** Read once: a meter provider registered while the handler runs must not record from time 0. */
  private readonly metered: boolean;

  constructor(
    private readonly otel: Recording,
    private readonly pattern: string,
    metadata: Metadata | undefined,
    caller: CallerIdentity | undefined,
    node: KableNode,
    tracing: boolean,
  ) {
    this.metered = otel.metering;
    this.startedAt = this.metered ? performance.now() : 0;
    if (tracing) {
      const attributes = {
        'messaging.system': SYSTEM,
        'messaging.operation.type': 'process',
        'messaging.destination.name': pattern,
      };
      [this.span, this.context] = startSpan(
        otel,
        `process ${pattern}`,
        'consumer',
        metadata,
        attributes,
        node,
        caller,
      );
    }
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const failed = error !== undefined;
    if (this.metered) {
      const attributes: Attributes = {
        'messaging.system': SYSTEM,
        'messaging.destination.name': this.pattern,
      };
      if (failed) attributes['error.type'] = STATUS.HANDLER_ERROR;
      this.otel.instruments.consumerDuration.record((performance.now() - this.startedAt) / 1000, attributes);
    }
    if (this.span === undefined) return;
    if (failed) {
      this.span.setAttribute('error.type', STATUS.HANDLER_ERROR);
      this.span.setStatus({
        code: this.otel.api.SpanStatusCode.ERROR,
        message: messageOf(error) ?? 'failed',
      });
    }
    this.span.end();
  }
}
