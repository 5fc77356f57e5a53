import net from 'node:net';
import tls from 'node:tls';
import { KableDataPlaneError } from './data-plane-errors.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameWriter } from './frame-writer.js';
import { readNextFrame } from './next-frame.js';
import { UnsentEvents, type QueuedFrame } from './unsent-events.js';
import { LIVENESS_DEFAULTS, PeerLiveness, type LivenessOptions } from './peer-liveness.js';
import { CLIENT_IDLE_TIMEOUT } from './connection-deadlines.js';
import {
  DEFAULT_MAX_FRAME_SIZE,
  FrameType,
  parseFrame,
  type CallerIdentity,
  type Metadata,
  type PatternLists,
} from './frames.js';

export interface ReplyObserver {
  next(value: unknown): void;
  error(error: unknown): void;
  complete(): void;
}

export interface PeerConnectionOptions {
  /** Largest frame accepted from the server, bytes (default 16 MiB); told to the server in the hello. */
  maxFrameSize?: number;
  /**
   * Bytes queued for this peer and not yet sent (default 32 MiB). Past it, requests and events fail at
   * once with KABLE_BACKPRESSURE (retryable: nothing was sent); one frame is always let through into an
   * empty queue, so memory per peer is bounded by this plus one frame.
   */
  maxQueuedBytes?: number;
  /** Milliseconds an event may wait to be handed to the socket before it fails with KABLE_TIMEOUT (default 30000). */
  eventTimeout?: number;
  /** Milliseconds to establish the connection before requests fail as unreachable (default 5000). */
  connectTimeout?: number;
  /** Sent first, so the server knows which node calls. */
  hello?: CallerIdentity;
  /** Most requests pending on this connection, queued or in flight (default 10000); more fail at once. */
  maxPending?: number;
  /** Opens the socket (TLS plugs in here). Default: plain TCP. */
  connect?: (host: string, port: number) => net.Socket;
  /** Told when the connection is connecting, open or closed. */
  onStatus?: (status: PeerConnectionStatus) => void;
  /** PING/PONG timings (see peer-liveness.ts); false turns the probe off. Default: LIVENESS_DEFAULTS. */
  liveness?: LivenessOptions | false;
  /** Told when the peer turns unresponsive (false) or answers again (true). */
  onLiveness?: (responsive: boolean) => void;
  /**
   * Milliseconds with nothing pending, sent or received after which the connection closes itself
   * (within one and a half times this; default CLIENT_IDLE_TIMEOUT); the next request opens a new one.
   * Closing before the server's longer idleTimeout does is what keeps a request from meeting it.
   */
  idleTimeout?: number;
}

export type PeerConnectionStatus = 'connecting' | 'open' | 'closed';

interface Pending extends QueuedFrame {
  observer: ReplyObserver | undefined;
  pattern: string;
  /** Handed to the socket: from then on a failure may mean the handler ran. */
  written: boolean;
  describe?: (lists: PatternLists) => void;
}

export const DEFAULT_MAX_QUEUED_BYTES = 32 * 1024 * 1024;

/**
 * One persistent, multiplexed connection to one peer. Connects on first use; every request and event
 * goes through it, batched. When it breaks, requests never written fail as retryable
 * (KABLE_PEER_UNREACHABLE) and requests already written fail at once as KABLE_PEER_LOST.
 *
 * Limits: each side tells the other the largest frame it accepts in its hello; frames are sent only
 * once the server's is known, and one over it fails alone (KABLE_PAYLOAD_TOO_LARGE) instead of
 * breaking the connection. Unsent bytes are capped (maxQueuedBytes), and a request or event taken
 * back before it was sent (cancelled, timed out) leaves the queue without a trace on the wire.
 */
export class PeerConnection {
  private socket: net.Socket | undefined;
  private readonly writer = new FrameWriter();
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private unwritten: number[] = [];
  private readonly events: UnsentEvents;
  private nextId = 1;
  private opened = false;
  /** Largest frame the server accepts, from its hello; nothing is sent before it is known. */
  private serverMaxFrameSize: number | undefined;
  private readonly maxQueuedBytes: number;
  private connectTimer: NodeJS.Timeout | undefined;
  status: PeerConnectionStatus = 'connecting';
  private readonly maxPending: number;
  readonly label: string;
  readonly liveness: PeerLiveness | undefined;
  /** Set when the peer left while still answering: closes once its last request is answered. */
  private retiring: string | undefined;
  /** Bumped by every request, event and chunk read: the idle check compares it, no clock per request. */
  private used = 0;
  private usedAtCheck = 0;
  private quietChecks = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Closed by this side after idleTimeout (nothing was pending): not a fault of the peer. */
  closedIdle = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly options: PeerConnectionOptions = {},
  ) {
    this.label = `${host}:${port}`;
    // Values (NEXT frames) are read without the generic codec: see next-frame.ts.
    this.decoder = new FrameDecoder(options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE, (bytes, start, end) =>
      readNextFrame(bytes, start, end, this.onNext),
    );
    this.maxPending = options.maxPending ?? 10_000;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.events = new UnsentEvents(options.eventTimeout ?? 30_000, (event) => {
      this.writer.remove(event.batch, event.start, event.size);
      return new KableDataPlaneError(
        'KABLE_TIMEOUT',
        `Event "${event.pattern}" not sent: ${this.label} took no data for ${options.eventTimeout ?? 30_000} ms (option: timeout); it was dropped unsent.`,
        false,
      );
    });
    this.writer.onFlush = () => this.markWritten();
    if (options.liveness !== false) {
      this.liveness = new PeerLiveness(options.liveness ?? LIVENESS_DEFAULTS, {
        outstanding: () => this.pending.size,
        ping: (nonce) => this.writer.write([FrameType.PING, nonce]),
        changed: (responsive) => {
          if (!responsive && this.retiring !== undefined) this.close(this.retiring);
          else this.options.onLiveness?.(responsive);
        },
      });
    }
  }

  /** Requests sent or queued and not yet answered: what the balancer weighs. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** False while the peer does not answer its PINGs (see peer-liveness.ts). */
  get responsive(): boolean {
    return this.liveness?.responsive ?? true;
  }

  /** Bytes queued for this peer and not yet sent (encoded frames, and what the socket still holds). */
  get queuedBytes(): number {
    return this.writer.queuedBytes + (this.socket?.writableLength ?? 0);
  }

  get closed(): boolean {
    return this.status === 'closed';
  }

  /** What this connection holds now: requests awaiting an answer, bytes of a partial frame, emits waiting. */
  get holding(): { pending: number; bufferedBytes: number; emitsWaiting: number } {
    return {
      pending: this.pending.size,
      bufferedBytes: this.decoder.pendingBytes,
      emitsWaiting: this.events.size,
    };
  }

  /** Bytes received and sent on this connection so far. */
  get bytes(): { in: number; out: number } {
    return { in: this.socket?.bytesRead ?? 0, out: this.socket?.bytesWritten ?? 0 };
  }

  /** Sends a request; returns a function that cancels it (the observer is not called after). */
  request(
    pattern: string,
    data: unknown,
    metadata: Metadata | undefined,
    observer: ReplyObserver,
  ): () => void {
    if (this.closed) {
      observer.error(this.unreachable(pattern, 'the connection is closed'));
      return noop;
    }
    this.used++;
    if (this.pending.size >= this.maxPending) {
      observer.error(
        new KableDataPlaneError(
          'KABLE_BACKPRESSURE',
          `Request "${pattern}" refused: ${this.maxPending} requests already pending to ${this.label}.`,
          true,
        ),
      );
      return noop;
    }
    const id = this.allocateId();
    // Written out rather than spread from nextSlot(): one object per request, not two (hot path).
    const writer = this.writer;
    const entry: Pending = {
      observer,
      pattern,
      written: false,
      batch: writer.batch,
      start: writer.batchOffset,
      size: 0,
    };
    this.pending.set(id, entry);
    this.unwritten.push(id);
    const limit = this.roomFor();
    entry.size = this.writer.writeRequest(id, pattern, data, metadata, limit);
    if (entry.size > limit) {
      // Not queued (so not flushed either): it is still the last one listed.
      this.pending.delete(id);
      this.unwritten.pop();
      observer.error(this.refusal('Request', pattern, entry.size));
      return noop;
    }
    this.ensureConnected();
    if (this.opened) this.liveness?.waiting();
    return () => this.cancel(id);
  }

  /**
   * Sends an event; resolves once handed to the socket. Rejects, the event unsent, with a retryable
   * error if it could not be (unreachable, KABLE_BACKPRESSURE), or KABLE_PAYLOAD_TOO_LARGE, or
   * KABLE_TIMEOUT after eventTimeout.
   */
  sendEvent(pattern: string, data: unknown, metadata?: Metadata): Promise<void> {
    if (this.closed) return Promise.reject(this.unreachable(pattern, 'the connection is closed'));
    this.used++;
    const slot = this.nextSlot();
    const limit = this.roomFor();
    slot.size = this.writer.write(
      metadata === undefined ? [FrameType.EVENT, pattern, data] : [FrameType.EVENT, pattern, data, metadata],
      limit,
    );
    if (slot.size > limit) return Promise.reject(this.refusal('Event', pattern, slot.size));
    this.ensureConnected();
    // Handed to the socket already (the write completed a slice of the batch).
    if (this.writer.batch !== slot.batch) return Promise.resolve();
    return this.events.add(slot, pattern);
  }

  /** Asks the node which patterns it serves. */
  describe(timeoutMs: number): Promise<PatternLists> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Taken back if still unsent; a late answer is ignored.
        const entry = this.pending.get(id);
        this.pending.delete(id);
        if (entry !== undefined && !entry.written) this.writer.remove(entry.batch, entry.start, entry.size);
        reject(
          new KableDataPlaneError(
            'KABLE_TIMEOUT',
            `${this.label} did not describe its patterns within ${timeoutMs} ms.`,
            true,
          ),
        );
      }, timeoutMs);
      const id = this.allocateId();
      const entry: Pending = {
        ...this.nextSlot(),
        pattern: '(describe)',
        written: false,
        observer: {
          next: noop,
          complete: noop,
          error: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        },
        describe: (lists) => {
          clearTimeout(timer);
          resolve(lists);
        },
      };
      this.pending.set(id, entry);
      this.unwritten.push(id);
      entry.size = this.writer.write([FrameType.DESCRIBE, id]);
      this.ensureConnected();
    });
  }

  /**
   * The peer left the cluster view (evicted). Unless the liveness probe already found it unresponsive,
   * its requests in flight may finish: the connection closes once they are answered, or as soon as the
   * probe finds it unresponsive (they fail then). Without the probe, or when it is unresponsive: now.
   */
  retire(departed: string): void {
    if (this.pending.size > 0 && this.liveness?.responsive === true) this.retiring = departed;
    else this.close(departed);
  }

  /** Closes the connection; `departed` says how the peer left (for the errors of requests it held). */
  close(departed?: string): void {
    this.fail(undefined, departed);
  }

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  private cancel(id: number): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id);
    if (!this.closed) {
      // Never sent: taken back from the queue, and the server never hears of it.
      if (pending.written || !this.writer.remove(pending.batch, pending.start, pending.size)) {
        this.writer.write([FrameType.CANCEL, id]);
      }
    }
    this.closeIfRetired();
  }

  private closeIfRetired(): void {
    if (this.retiring !== undefined && this.pending.size === 0) this.close(this.retiring);
  }

  /** Where the next frame goes in the writer's batch (its size is filled in once encoded). */
  private nextSlot(): QueuedFrame {
    return { batch: this.writer.batch, start: this.writer.batchOffset, size: 0 };
  }

  /** Largest frame that may be queued now: the server's limit, and what is left of maxQueuedBytes. */
  private roomFor(): number {
    const queued = this.queuedBytes;
    const room = queued === 0 ? Infinity : this.maxQueuedBytes - queued;
    return Math.min(room, this.serverMaxFrameSize ?? Infinity);
  }

  private refusal(what: 'Request' | 'Event', pattern: string, size: number): KableDataPlaneError {
    const limit = this.serverMaxFrameSize ?? Infinity;
    if (size > limit) return this.tooLarge(what, pattern, size, limit);
    return new KableDataPlaneError(
      'KABLE_BACKPRESSURE',
      `${what} "${pattern}" refused: ${this.queuedBytes} bytes already queued to ${this.label} (maxQueuedBytes ${this.maxQueuedBytes}); it does not read fast enough.`,
      true,
    );
  }

  private tooLarge(what: string, pattern: string, size: number, limit: number): KableDataPlaneError {
    return new KableDataPlaneError(
      'KABLE_PAYLOAD_TOO_LARGE',
      `${what} "${pattern}" not sent: it is ${size} bytes encoded, over the ${limit}-byte limit of ${this.label} (its maxFrameSize).`,
      false,
    );
  }

  private ensureConnected(): void {
    if (this.socket !== undefined || this.closed) return;
    const socket = this.options.connect
      ? this.options.connect(this.host, this.port)
      : net.connect({ host: this.host, port: this.port });
    this.socket = socket;
    this.options.onStatus?.('connecting');
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(
      () => socket.destroy(new Error(`no connection within ${this.options.connectTimeout ?? 5000} ms`)),
      this.options.connectTimeout ?? 5000,
    );
    this.connectTimer.unref();
    // Over TLS the connection is usable (and a request "written") only once the handshake is done.
    const secure = socket instanceof tls.TLSSocket;
    // A frozen server's kernel still accepts the TCP connection, but nobody answers the handshake: that
    // wait gets the liveness window too, as the hello's does, not the whole connect timeout.
    if (secure) socket.once('connect', () => this.awaitServer('TLS handshake'));
    socket.once(secure ? 'secureConnect' : 'connect', () => this.onOpen());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(undefined));
  }

  private onOpen(): void {
    if (this.opened || this.closed) return;
    this.opened = true;
    this.status = 'open';
    this.options.onStatus?.('open');
    // The hello must go first: ahead of what is already encoded, so written straight out. What is
    // queued waits for the server's hello (its size limit); the connect timeout bounds that wait.
    this.socket!.write(helloFrame(this.options.hello, this.options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE));
    this.awaitServer('hello');
    this.startSending();
  }

  /**
   * A server answers the hello (and, over TLS, the handshake before it) from its event loop, as it
   * answers a PING: one that is frozen or blocked (the kernel still accepts its connections) says
   * nothing. With liveness on, each of these waits is as long as a
   * PING may go unanswered (750 ms by default), not the whole connect timeout: the requests waiting here
   * were never written, so they fail as unreachable and go to another replica at once.
   */
  private awaitServer(what: 'hello' | 'TLS handshake'): void {
    const liveness = this.options.liveness ?? LIVENESS_DEFAULTS;
    if (liveness === false || this.serverMaxFrameSize !== undefined || this.closed) return;
    const window = liveness.probeAfter + liveness.answerWithin;
    clearTimeout(this.connectTimer);
    const socket = this.socket!;
    this.connectTimer = setTimeout(
      () =>
        socket.destroy(
          new Error(`no ${what} from the server within ${window} ms of connecting (option: liveness)`),
        ),
      window,
    );
    this.connectTimer.unref();
  }

  /** Once open and the server's limit is known (in either order), what is queued goes out. */
  private startSending(): void {
    if (!this.opened || this.serverMaxFrameSize === undefined || this.closed) return;
    clearTimeout(this.connectTimer);
    this.writer.attach(this.socket!);
    if (this.pending.size > 0) this.liveness?.waiting();
    const idle = this.options.idleTimeout ?? CLIENT_IDLE_TIMEOUT;
    this.idleTimer = setInterval(this.closeIfIdle, Math.max(1, Math.floor(idle / 2)));
    this.idleTimer.unref();
  }

  /** Every half idleTimeout: two checks in a row with nothing used and nothing pending close it. */
  private readonly closeIfIdle = (): void => {
    if (this.used !== this.usedAtCheck || this.pending.size > 0 || this.events.size > 0) {
      this.usedAtCheck = this.used;
      this.quietChecks = 0;
      return;
    }
    if (++this.quietChecks < 2) return;
    this.closedIdle = true;
    this.close();
  };

  /** The server said how large a frame it accepts: fail what is queued over it, then start sending. */
  private onServerHello(maxFrameSize: number | undefined): void {
    if (this.serverMaxFrameSize !== undefined) return;
    const limit = maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.serverMaxFrameSize = limit;
    for (const [id, entry] of this.pending) {
      if (entry.written || entry.size <= limit) continue;
      this.writer.remove(entry.batch, entry.start, entry.size);
      this.pending.delete(id);
      entry.observer?.error(this.tooLarge('Request', entry.pattern, entry.size, limit));
    }
    this.events.failWhere((event) => {
      if (event.size <= limit) return undefined;
      this.writer.remove(event.batch, event.start, event.size);
      return this.tooLarge('Event', event.pattern, event.size, limit);
    });
    this.startSending();
  }

  private markWritten(): void {
    for (const id of this.unwritten) {
      const pending = this.pending.get(id);
      if (pending !== undefined) pending.written = true;
    }
    this.unwritten = [];
    this.events.written();
  }

  private onData(chunk: Buffer): void {
    this.used++;
    this.liveness?.heard();
    const failure = this.decoder.push(chunk, (value) => this.onValue(value));
    if (failure !== undefined) this.fail(new Error(`protocol error from ${this.label}: ${failure}`));
  }

  private onValue(value: unknown): void {
    const frame = parseFrame(value);
    if (frame === undefined) {
      this.fail(new Error(`protocol error from ${this.label}: a frame of unknown shape`));
      return;
    }
    if (frame.type === FrameType.HELLO) return this.onServerHello(frame.maxFrameSize);
    if (frame.type === FrameType.EVENT || frame.type === FrameType.REQUEST) return;
    if (frame.type === FrameType.PONG || frame.type === FrameType.PING) return; // arrival was the news
    if (frame.type === FrameType.NEXT) return this.onNext(frame.id, frame.value, frame.last);
    const pending = this.pending.get(frame.id);
    if (pending === undefined) return; // cancelled meanwhile
    if (this.retiring !== undefined) queueMicrotask(() => this.closeIfRetired());
    const observer = pending.observer;
    switch (frame.type) {
      case FrameType.COMPLETE:
        this.pending.delete(frame.id);
        observer?.complete();
        return;
      case FrameType.ERROR:
        this.pending.delete(frame.id);
        observer?.error(frame.error);
        return;
      case FrameType.REFUSED:
        this.pending.delete(frame.id);
        observer?.error(
          new KableDataPlaneError(
            'KABLE_REFUSED',
            `Request "${pending.pattern}" refused by ${this.label}: ${frame.reason}.`,
            true,
          ),
        );
        return;
      case FrameType.DESCRIPTION:
        this.pending.delete(frame.id);
        pending.describe?.(frame.lists);
        return;
      default:
        return;
    }
  }

  /** A value for request `id`; `last`: the reply completes with it. */
  private readonly onNext = (id: number, value: unknown, last: boolean): void => {
    const pending = this.pending.get(id);
    if (pending === undefined) return; // cancelled meanwhile
    if (this.retiring !== undefined) queueMicrotask(() => this.closeIfRetired());
    const observer = pending.observer;
    if (last) {
      this.pending.delete(id);
      observer?.next(value);
      observer?.complete();
    } else observer?.next(value);
  };

  private fail(error: Error | undefined, departed?: string): void {
    if (this.closed) return;
    this.status = 'closed';
    clearTimeout(this.connectTimer);
    clearInterval(this.idleTimer);
    this.liveness?.stop();
    this.writer.discard();
    this.socket?.destroy();
    const reason = departed ?? error?.message ?? 'the connection closed';
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) {
      const failure =
        entry.written && this.opened
          ? new KableDataPlaneError(
              'KABLE_PEER_LOST',
              departed === undefined
                ? `Request "${entry.pattern}" lost: the connection to ${this.label} broke after it was sent (${reason}).`
                : `Request "${entry.pattern}" lost: ${this.label} ${departed} after it was sent (it may have run).`,
              false,
              { cause: error },
            )
          : this.unreachable(entry.pattern, reason, error);
      entry.observer?.error(failure);
    }
    this.events.failAll((pattern) => this.unreachable(pattern, reason, error));
    this.options.onStatus?.('closed');
  }

  private unreachable(pattern: string, reason: string, cause?: unknown): KableDataPlaneError {
    return new KableDataPlaneError(
      'KABLE_PEER_UNREACHABLE',
      `Request "${pattern}" not sent: ${this.label} is unreachable (${reason}).`,
      true,
      { cause },
    );
  }
}

function noop(): void {}

let helloEncoder: FrameWriter | undefined;
function helloFrame(caller: CallerIdentity | undefined, maxFrameSize: number): Buffer {
  helloEncoder ??= new FrameWriter();
  const hello =
    caller === undefined ? { max: maxFrameSize } : { id: caller.id, iid: caller.iid, max: maxFrameSize };
  return helloEncoder.encodeOne([FrameType.HELLO, hello]);
}
