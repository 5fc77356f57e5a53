import type { Attributes, Span } from '@opentelemetry/api';
import type { Metadata } from '../data-plane/frames.js';
import type { PeerRecord } from '../node/peer-record.js';
import { ATTR, EVENT, STATUS, SYSTEM, messageOf, statusOf } from './conventions.js';
import type { Instrumentation } from './instrumentation.js';
import type { OutboundTrace as Hooks } from './telemetry.js';

/**
 * One `send()` (a CLIENT span) or `emit()` (a PRODUCER span), from the call to the last reply, with
 * the trace context added to the request metadata. Retries and refusals are events of the one span;
 * the replica that answered is in its attributes.
 */
export class OutboundTrace implements Hooks {
  readonly metadata: Metadata | undefined;
  private readonly span: Span;
  private readonly recording: boolean;
  private readonly startedAt = performance.now();
  /** rpc.system.name and rpc.method: the attributes of in-flight and retry counts. */
  private readonly base: Attributes;
  private peer: PeerRecord | undefined;
  private attempts = 0;
  private values = 0;
  private ended = false;
  private cancelling = false;

  constructor(
    private readonly otel: Instrumentation,
    private readonly kind: 'request' | 'event',
    pattern: string,
    metadata: Metadata | undefined,
  ) {
    const { api } = otel;
    const parent = api.context.active();
    const request = kind === 'request';
    this.base = request
      ? { [ATTR.RPC_SYSTEM_NAME]: SYSTEM, [ATTR.RPC_METHOD]: pattern }
      : { [ATTR.MESSAGING_SYSTEM]: SYSTEM, [ATTR.MESSAGING_DESTINATION]: pattern };
    this.span = otel.tracer.startSpan(
      request ? pattern : `send ${pattern}`,
      {
        kind: request ? api.SpanKind.CLIENT : api.SpanKind.PRODUCER,
        attributes: request
          ? { ...this.base, [ATTR.RPC_SYSTEM]: SYSTEM }
          : { ...this.base, [ATTR.MESSAGING_OPERATION]: 'send' },
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
    if (request) otel.instruments.clientActive.add(1, this.base);
  }

  attempt(peer: PeerRecord): void {
    this.attempts++;
    this.peer = peer;
    if (!this.recording) return;
    this.span.setAttributes({
      [ATTR.SERVER_ADDRESS]: peer.host,
      [ATTR.SERVER_PORT]: peer.port,
      [ATTR.NODE_ID]: peer.id,
      [ATTR.NODE_IID]: peer.iid,
    });
  }

  retry(error: unknown): void {
    if (this.ended) return;
    const code = statusOf(error);
    const refused = code === 'KABLE_REFUSED';
    if (refused) this.otel.instruments.refusals.add(1, this.base);
    this.otel.instruments.retries.add(1, { ...this.base, [ATTR.ERROR_TYPE]: code });
    if (!this.recording) return;
    this.span.addEvent(refused ? EVENT.REFUSED : EVENT.RETRY, {
      [ATTR.ERROR_TYPE]: code,
      [ATTR.NODE_ID]: this.peer?.id ?? '',
      [ATTR.NODE_IID]: this.peer?.iid ?? '',
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
    const { api, instruments } = this.otel;
    const failed = status !== STATUS.OK;
    if (status === 'KABLE_REFUSED') instruments.refusals.add(1, this.base);
    const attributes: Attributes = { ...this.base, [ATTR.RPC_STATUS]: status };
    if (failed) attributes[ATTR.ERROR_TYPE] = status;
    if (this.peer !== undefined) attributes[ATTR.NODE_ID] = this.peer.id;
    const seconds = (performance.now() - this.startedAt) / 1000;
    if (this.kind === 'request') {
      instruments.clientActive.add(-1, this.base);
      instruments.clientDuration.record(seconds, attributes);
    } else instruments.producerDuration.record(seconds, attributes);
    if (this.recording) {
      this.span.setAttributes({
        [ATTR.RPC_STATUS]: status,
        [ATTR.ATTEMPTS]: this.attempts,
        ...(this.kind === 'request' ? { [ATTR.VALUES]: this.values } : {}),
        ...(failed ? { [ATTR.ERROR_TYPE]: status } : {}),
      });
      if (failed) {
        const message = messageOf(error);
        this.span.setStatus({
          code: api.SpanStatusCode.ERROR,
          message: message === undefined ? status : `${status}: ${message}`,
        });
      }
    }
    this.span.end();
  }
}
