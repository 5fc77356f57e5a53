import type { Attributes, Context, Span } from '@opentelemetry/api';
import type { InboundRequest, ReplyChannel } from '../data-plane/data-plane-server.js';
import type { CallerIdentity, Metadata } from '../data-plane/frames.js';
import type { KableNode } from '../node/kable-node.js';
import { NO_MESSAGE_HANDLER } from '../nest/kable.constants.js';
import { ATTR, EVENT, STATUS, SYSTEM, messageOf } from './conventions.js';
import { metadataGetter, type Instrumentation } from './instrumentation.js';

/** The caller's trace context from the request metadata; the root context when it sent none. */
function parentOf(otel: Instrumentation, metadata: Metadata | undefined): Context {
  const { api } = otel;
  return metadata === undefined
    ? api.ROOT_CONTEXT
    : api.propagation.extract(api.ROOT_CONTEXT, metadata, metadataGetter);
}

function servingAttributes(node: KableNode, caller: CallerIdentity | undefined): Attributes {
  const attributes: Attributes = {
    [ATTR.SERVER_ADDRESS]: node.host,
    [ATTR.SERVER_PORT]: node.port,
    [ATTR.NODE_ID]: node.id,
    [ATTR.NODE_IID]: node.iid,
  };
  if (caller !== undefined) {
    attributes[ATTR.CALLER_ID] = caller.id;
    attributes[ATTR.CALLER_IID] = caller.iid;
  }
  return attributes;
}

/**
 * The SERVER span of one request: a reply channel in front of the data plane's, ending the span (and
 * recording the duration) when the reply ends. Its `context` is what the handler runs in.
 */
export class TracedReply implements ReplyChannel {
  readonly context: Context;
  private readonly span: Span;
  private readonly startedAt = performance.now();
  private readonly base: Attributes;
  private values = 0;
  private ended = false;

  constructor(
    private readonly otel: Instrumentation,
    private readonly request: InboundRequest,
    private readonly inner: ReplyChannel,
    node: KableNode,
  ) {
    const { api } = otel;
    const parent = parentOf(otel, request.metadata);
    this.base = { [ATTR.RPC_SYSTEM_NAME]: SYSTEM, [ATTR.RPC_METHOD]: request.pattern };
    this.span = otel.tracer.startSpan(
      request.pattern,
      {
        kind: api.SpanKind.SERVER,
        attributes: {
          ...this.base,
          [ATTR.RPC_SYSTEM]: SYSTEM,
          ...servingAttributes(node, request.caller),
        },
      },
      parent,
    );
    this.context = api.trace.setSpan(parent, this.span);
    otel.instruments.serverActive.add(1, this.base);
  }

  get closed(): boolean {
    return this.inner.closed;
  }

  next(value: unknown, last?: boolean): void {
    if (this.inner.closed) return;
    this.values++;
    this.inner.next(value, last);
    if (last === true) this.finish(STATUS.OK);
  }

  error(error: unknown): void {
    if (this.inner.closed) return;
    this.inner.error(error);
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
    this.span.addEvent(EVENT.REFUSED, { [ATTR.REASON]: reason });
    this.finish('KABLE_REFUSED');
  }

  /** The caller cancelled or its connection closed. Not a server error (as gRPC's CANCELLED). */
  cancelled(): void {
    this.span.addEvent(EVENT.CANCELLED);
    this.finish(STATUS.CANCELLED);
  }

  private finish(status: string, error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const { api, instruments } = this.otel;
    // A pattern nobody serves is whatever a caller chose: keep it out of the metrics' attributes.
    const unknown = status === STATUS.NO_HANDLER;
    const base = unknown ? { ...this.base, [ATTR.RPC_METHOD]: '_OTHER' } : this.base;
    const failed = status === STATUS.HANDLER_ERROR || unknown;
    const attributes: Attributes = { ...base, [ATTR.RPC_STATUS]: status };
    if (failed) attributes[ATTR.ERROR_TYPE] = status;
    instruments.serverActive.add(-1, this.base);
    instruments.serverDuration.record((performance.now() - this.startedAt) / 1000, attributes);
    if (this.span.isRecording()) {
      this.span.setAttributes({ [ATTR.RPC_STATUS]: status, [ATTR.VALUES]: this.values });
      if (unknown) {
        this.span.setAttributes({
          [ATTR.RPC_METHOD]: '_OTHER',
          [ATTR.RPC_METHOD_ORIGINAL]: this.request.pattern,
        });
      }
      if (failed) {
        this.span.setAttribute(ATTR.ERROR_TYPE, status);
        this.span.setStatus({ code: api.SpanStatusCode.ERROR, message: messageOf(error) ?? status });
      }
    }
    this.span.end();
  }
}

/** The CONSUMER span of one event handler, ended when the handler settles. */
export class InboundEventTrace {
  readonly context: Context;
  private readonly span: Span;
  private readonly startedAt = performance.now();
  private readonly pattern: string;
  private ended = false;

  constructor(
    private readonly otel: Instrumentation,
    pattern: string,
    metadata: Metadata | undefined,
    caller: CallerIdentity | undefined,
    node: KableNode,
  ) {
    const { api } = otel;
    const parent = parentOf(otel, metadata);
    this.pattern = pattern;
    this.span = otel.tracer.startSpan(
      `process ${pattern}`,
      {
        kind: api.SpanKind.CONSUMER,
        attributes: {
          [ATTR.MESSAGING_SYSTEM]: SYSTEM,
          [ATTR.MESSAGING_OPERATION]: 'process',
          [ATTR.MESSAGING_DESTINATION]: pattern,
          ...servingAttributes(node, caller),
        },
      },
      parent,
    );
    this.context = api.trace.setSpan(parent, this.span);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const { api, instruments } = this.otel;
    const attributes: Attributes = {
      [ATTR.MESSAGING_SYSTEM]: SYSTEM,
      [ATTR.MESSAGING_DESTINATION]: this.pattern,
    };
    if (error !== undefined) {
      attributes[ATTR.ERROR_TYPE] = STATUS.HANDLER_ERROR;
      this.span.setAttribute(ATTR.ERROR_TYPE, STATUS.HANDLER_ERROR);
      this.span.setStatus({ code: api.SpanStatusCode.ERROR, message: messageOf(error) ?? 'failed' });
    }
    instruments.consumerDuration.record((performance.now() - this.startedAt) / 1000, attributes);
    this.span.end();
  }
}
