import net from 'node:net';
import tls from 'node:tls';
import { KableDataPlaneError } from './data-plane-errors.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameWriter, type FlushHolder } from './frame-writer.js';
import { readNextFrame } from './next-frame.js';
import { UnsentEvents, type QueuedFrame } from './unsent-events.js';
import { unencodableError } from './unencodable.js';
import { LIVENESS_DEFAULTS, PeerLiveness, type LivenessOptions } from './peer-liveness.js';
import { CLIENT_IDLE_TIMEOUT } from './connection-deadlines.js';
import {
  formatVersion,
  isCompatible,
  PROTOCOL_VERSION,
  SENDS_TEST_EXTENSIONS,
  versionToArray,
  type ProtocolVersion,
} from '../node/protocol-version.js';
import {
  DEFAULT_MAX_FRAME_SIZE,
  FrameType,
  parseFrame,
  TEST_EXTENSION_FRAME,
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
   * Bytes queued for this peer and not yet sent (default 32 MiB). A request that does not fit waits for
   * room, in order (see PeerConnection.request); an event that does not fit fails at once with
   * KABLE_BACKPRESSURE (retryable: nothing was sent). A request or event larger than this whole cap
   * fails at once with KABLE_PAYLOAD_TOO_LARGE. Encoded requests and events per peer stay within it
   * (control frames, a few bytes each, are let through); what waits is not encoded.
   */
  maxQueuedBytes?: number;
  /** Milliseconds an event may wait to be handed to the socket before it fails with KABLE_TIMEOUT (default 30000). */
  eventTimeout?: number;
  /** Milliseconds to establish the connection before requests fail as unreachable (default 5000). */
  connectTimeout?: number;
  /** Sent first, so the server knows which node calls. */
  hello?: CallerIdentity;
  /**
   * Most requests pending on this connection, queued, in flight or waiting for room (default 10000);
   * more fail at once with KABLE_BACKPRESSURE.
   */
  maxPending?: number;
  /** Opens the socket (TLS plugs in here). Default: plain TCP. */
  connect?: (host: string, port: number) => net.Socket;
  /** Told when the connection is connecting, open or closed. */
  onStatus?: (status: PeerConnectionStatus) => void;
  /** PING/PONG timings (see peer-liveness.ts); false turns the probe off. Default: LIVENESS_DEFAULTS. */
  liveness?: LivenessOptions | false;
  /** Told when the peer turns unresponsive (false) or answers again (true). */
  onLiveness?: (responsive: boolean) => void;
  /** Told of each well-formed frame of a type this version does not know (a later minor's): it is ignored. */
  onUnknownFrame?: (type: number) => void;
  /**
   * Milliseconds with nothing pending, sent or received after which the connection closes itself
   * (within one and a half times this; default CLIENT_IDLE_TIMEOUT); the next request opens a new one.
   * Closing before the server's longer idleTimeout does is what keeps a request from meeting it.
   */
  idleTimeout?: number;
  /** May hold the connection's writes until later in the turn (see FlushHolder). Default: none. */
  flushHolder?: FlushHolder;
  /** The peer's instance id, told to `flushHolder` with each write it may hold. Default: `host:port`. */
  peer?: string;
}

export type PeerConnectionStatus = 'connecting' | 'open' | 'closed';

interface Pending extends QueuedFrame {
  observer: ReplyObserver | undefined;
  pattern: string;
  /** Handed to the socket: from then on a failure may mean the handler ran. */
  written: boolean;
  describe?: (lists: PatternLists) => void;
}

/**
 * A request waiting for room in the queue toward the peer. It is not encoded while it waits (it holds
 * only what its caller passed), so what waits costs no memory of its own beyond this record.
 */
interface RoomWaiter {
  pattern: string;
  data: unknown;
  metadata: Metadata | undefined;
  observer: ReplyObserver;
  /** Its encoded size once tried (0 before): not tried again until that much room is free. */
  size: number;
  /** Its request id once it left the wait and was queued (0 while waiting). */
  id: number;
}

export const DEFAULT_MAX_QUEUED_BYTES = 32 * 1024 * 1024;

/**
 * One persistent, multiplexed connection to one peer. Connects on first use; every request and event
 * goes through it, batched. When it breaks, requests never written fail as retryable
 * (KABLE_PEER_UNREACHABLE) and requests already written fail at once as KABLE_PEER_LOST.
 *
 * Limits: each side tells the other the largest frame it accepts in its hello; frames are sent only
 * once the server's is known, and one over it fails alone (KABLE_PAYLOAD_TOO_LARGE) instead of
 * breaking the connection. Unsent bytes are capped (maxQueuedBytes: a request that does not fit waits
 * for room, in order, unencoded), and a request or event taken back before it was sent (cancelled,
 * timed out) leaves the queue without a trace on the wire.
 */
export class PeerConnection {
  private socket: net.Socket | undefined;
  private readonly writer = new FrameWriter();
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private unwritten: number[] = [];
  /** Requests waiting for room in the queue, first come first served. */
  private readonly roomWaiters: RoomWaiter[] = [];
  /** Requests that had to wait for room, since the connection was made. */
  private roomWaits = 0;
  private readonly events: UnsentEvents;
  private nextId = 1;
  /** Set once request ids wrapped around 2^32: from then on a new id may still be held by a request. */
  private idsWrapped = false;
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
      if (this.writer.remove(event.batch, event.start, event.size)) queueMicrotask(this.admitWaiting);
      return new KableDataPlaneError(
        'KABLE_TIMEOUT',
        `Event "${event.pattern}" not sent: ${this.label} took no data for ${options.eventTimeout ?? 30_000} ms (option: timeout); it was dropped unsent.`,
        false,
      );
    });
    this.writer.holder = options.flushHolder;
    this.writer.peer = options.peer ?? this.label;
    this.writer.onFlush = () => this.markWritten();
    this.writer.onSent = this.admitWaiting;
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

  /** Requests sent, queued or waiting for room, and not yet answered: what the balancer weighs. */
  get inFlight(): number {
    return this.pending.size + this.roomWaiters.length;
  }

  /** Requests waiting for room in the queue. */
  get waitingForRoom(): number {
    return this.roomWaiters.length;
  }

  /**
   * Whether the request whose reply observer this is has not been handed to the socket yet: it waits for
   * room in this caller's own queue, or sits in that queue. Looked up only when a request times out (a
   * scan, off the hot path): such a request never reached its server, whose health it says nothing of.
   */
  isUnsent(observer: ReplyObserver): boolean {
    for (const waiter of this.roomWaiters) if (waiter.observer === observer && waiter.id === 0) return true;
    for (const entry of this.pending.values()) if (entry.observer === observer) return !entry.written;
    return false;
  }

  /**
   * False while requests wait for room or the queue is at its cap: a caller with another replica sends
   * there instead. True does not promise that a large request fits.
   */
  get hasRoom(): boolean {
    return this.roomWaiters.length === 0 && this.queuedBytes < this.maxQueuedBytes;
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
  get holding(): {
    pending: number;
    bufferedBytes: number;
    emitsWaiting: number;
    waitingForRoom: number;
    roomWaits: number;
  } {
    return {
      pending: this.pending.size,
      bufferedBytes: this.decoder.pendingBytes,
      emitsWaiting: this.events.size,
      waitingForRoom: this.roomWaiters.length,
      roomWaits: this.roomWaits,
    };
  }

  /** Bytes received and sent on this connection so far. */
  get bytes(): { in: number; out: number } {
    return { in: this.socket?.bytesRead ?? 0, out: this.socket?.bytesWritten ?? 0 };
  }

  /**
   * Sends a request; returns a function that cancels it (the observer is not called after).
   *
   * A request that does not fit in the queue (maxQueuedBytes) waits for room, behind any request already
   * waiting: no timer, no retry; it is queued as soon as the socket has taken enough of what is ahead
   * of it. Cancelling it while it waits (the caller's timeout or unsubscribe) takes it out without a
   * trace: it was never encoded into the queue. Only one larger than the whole cap, or than the
   * server's maxFrameSize, fails at once (KABLE_PAYLOAD_TOO_LARGE); past maxPending requests pending or
   * waiting, KABLE_BACKPRESSURE.
   */
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
    if (this.pending.size + this.roomWaiters.length >= this.maxPending) {
      observer.error(
        new KableDataPlaneError(
          'KABLE_BACKPRESSURE',
          `Request "${pattern}" refused: ${this.maxPending} requests already pending to ${this.label} (${this.roomWaiters.length} of them waiting for room in its queue; option: maxPending).`,
          true,
        ),
      );
      return noop;
    }
    // In turn: never ahead of the requests already waiting for room.
    if (this.roomWaiters.length > 0) return this.waitForRoom(pattern, data, metadata, observer, 0);
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
    try {
      entry.size = this.writer.writeRequest(id, pattern, data, metadata, limit);
    } catch (error) {
      // Data the codec cannot encode (a bigint, a circular object): nothing was queued, and nothing of
      // the request may stay (a pending entry would count in inFlight and keep PINGs going forever).
      this.pending.delete(id);
      this.unwritten.pop();
      this.writer.encodeFailed();
      observer.error(unencodableError('Request', pattern, data, metadata, error));
      return noop;
    }
    if (entry.size > limit) {
      // Not queued (so not flushed either): it is still the last one listed.
      this.pending.delete(id);
      this.unwritten.pop();
      const oversize = this.oversize('Request', pattern, entry.size);
      if (oversize === undefined) return this.waitForRoom(pattern, data, metadata, observer, entry.size);
      observer.error(oversize);
      return noop;
    }
    this.ensureConnected();
    if (this.opened) this.liveness?.waiting();
    return () => this.cancel(id);
  }

  /** Lists a request that does not fit yet; returns what cancels it, waiting or queued by then. */
  private waitForRoom(
    pattern: string,
    data: unknown,
    metadata: Metadata | undefined,
    observer: ReplyObserver,
    size: number,
  ): () => void {
    const waiter: RoomWaiter = { pattern, data, metadata, observer, size, id: 0 };
    this.roomWaiters.push(waiter);
    this.roomWaits++;
    // What it waits behind must get going (the first request may not fit a queue still connecting).
    this.ensureConnected();
    return () => this.leaveWaiting(waiter);
  }

  /** A waiting request was cancelled: out of the list (it was never queued), or cancelled if sent since. */
  private leaveWaiting(waiter: RoomWaiter): void {
    if (waiter.id !== 0) return this.cancel(waiter.id);
    const at = this.roomWaiters.indexOf(waiter);
    if (at < 0) return;
    this.roomWaiters.splice(at, 1);
    // The first one left: the next may fit already.
    if (at === 0) this.admitWaiting();
  }

  /**
   * Queues the waiting requests, in order, while they fit. Called whenever room may have grown: a write
   * left the socket, a queued frame was taken back, the server's limit became known.
   */
  private readonly admitWaiting = (): void => {
    const waiters = this.roomWaiters;
    while (waiters.length > 0 && !this.closed) {
      const waiter = waiters[0];
      if (waiter.size > this.maxQueuedBytes - this.queuedBytes) return;
      const id = this.allocateId();
      const entry: Pending = {
        observer: waiter.observer,
        pattern: waiter.pattern,
        written: false,
        batch: this.writer.batch,
        start: this.writer.batchOffset,
        size: 0,
      };
      this.pending.set(id, entry);
      this.unwritten.push(id);
      const limit = this.roomFor();
      try {
        entry.size = this.writer.writeRequest(id, waiter.pattern, waiter.data, waiter.metadata, limit);
      } catch (error) {
        // Data the codec cannot encode: encoded only now (it waited behind others), from a socket
        // callback, so it fails this request alone instead of escaping into the event loop. The codec
        // throws before anything is written to the batch.
        this.pending.delete(id);
        this.unwritten.pop();
        this.writer.encodeFailed();
        waiters.shift();
        waiter.observer.error(
          unencodableError('Request', waiter.pattern, waiter.data, waiter.metadata, error),
        );
        continue;
      }
      if (entry.size > limit) {
        this.pending.delete(id);
        this.unwritten.pop();
        // Its size may have changed (the caller's data did), or the server's limit is known now.
        const oversize = this.oversize('Request', waiter.pattern, entry.size);
        if (oversize === undefined) {
          waiter.size = entry.size;
          return;
        }
        waiters.shift();
        waiter.observer.error(oversize);
        continue;
      }
      waiters.shift();
      waiter.id = id;
      waiter.data = undefined;
      waiter.metadata = undefined;
      if (this.opened) this.liveness?.waiting();
    }
  };

  /**
   * Sends an event; resolves once handed to the socket. Rejects, the event unsent, with a retryable
   * error if it could not be (unreachable, KABLE_BACKPRESSURE), or KABLE_PAYLOAD_TOO_LARGE, or
   * KABLE_TIMEOUT after eventTimeout.
   */
  sendEvent(pattern: string, data: unknown, metadata?: Metadata): Promise<void> {
    if (this.closed) return Promise.reject(this.unreachable(pattern, 'the connection is closed'));
    this.used++;
    const slot = this.nextSlot();
    // Events do not wait for room (their caller tries another replica); nor do they pass requests that do.
    const limit = this.roomWaiters.length > 0 ? 0 : this.roomFor();
    try {
      slot.size = this.writer.write(
        metadata === undefined
          ? [FrameType.EVENT, pattern, data]
          : [FrameType.EVENT, pattern, data, metadata],
        limit,
      );
    } catch (error) {
      // Nothing was queued (see FrameWriter.encodeFailed): the event fails alone, not retried.
      this.writer.encodeFailed();
      return Promise.reject(unencodableError('Event', pattern, data, metadata, error));
    }
    if (slot.size > limit)
      return Promise.reject(this.oversize('Event', pattern, slot.size) ?? this.backpressure(pattern));
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
    if (this.pending.size > 0 && this.liveness?.responsive === true) {
      this.retiring = departed;
      // Never sent: better sent to another replica at once than to one that left.
      this.failWaiting(departed);
    } else this.close(departed);
  }

  /** Closes the connection; `departed` says how the peer left (for the errors of requests it held). */
  close(departed?: string): void {
    this.fail(undefined, departed);
  }

  private allocateId(): number {
    let id = this.nextId;
    // After a wrap, an id still pending (a long-lived stream) is skipped: the server takes a second
    // request with a live id for a protocol error. Before the first wrap none can be: no lookup then.
    // At most maxPending ids are pending, so the loop ends.
    if (this.idsWrapped) while (this.pending.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    if (id >= 0xffffffff) {
      this.nextId = 1;
      this.idsWrapped = true;
    } else this.nextId = id + 1;
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
      } else if (this.roomWaiters.length > 0) this.admitWaiting();
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
    return Math.min(this.maxQueuedBytes - this.queuedBytes, this.serverMaxFrameSize ?? Infinity);
  }

  /** Why a frame of `size` bytes can never be queued here (undefined if it can, once there is room). */
  private oversize(
    what: 'Request' | 'Event',
    pattern: string,
    size: number,
  ): KableDataPlaneError | undefined {
    const limit = this.serverMaxFrameSize ?? Infinity;
    if (size > limit) return this.tooLarge(what, pattern, size, limit);
    if (size <= this.maxQueuedBytes) return undefined;
    return new KableDataPlaneError(
      'KABLE_PAYLOAD_TOO_LARGE',
      `${what} "${pattern}" not sent: it is ${size} bytes encoded, over the whole queue toward ${this.label} (maxQueuedBytes ${this.maxQueuedBytes}); raise maxQueuedBytes to send it.`,
      false,
    );
  }

  private backpressure(pattern: string): KableDataPlaneError {
    const waiting = this.roomWaiters.length;
    return new KableDataPlaneError(
      'KABLE_BACKPRESSURE',
      `Event "${pattern}" refused: ${this.queuedBytes} bytes already queued to ${this.label} (maxQueuedBytes ${this.maxQueuedBytes})${waiting > 0 ? ` and ${waiting} requests waiting for room` : ''}; it does not read fast enough.`,
      true,
    );
  }

  /** Fails every request waiting for room as unreachable (never sent: retryable). */
  private failWaiting(reason: string, cause?: unknown): void {
    const waiters = this.roomWaiters.splice(0);
    for (const waiter of waiters) waiter.observer.error(this.unreachable(waiter.pattern, reason, cause));
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
   *
   * As in peer-liveness.ts, the verdict waits for the event loop to poll its sockets once more
   * (setImmediate): a caller whose own loop was blocked past the window runs its overdue timers before
   * it reads, and must read the answer already in its kernel buffer before blaming the server.
   */
  private awaitServer(what: 'hello' | 'TLS handshake'): void {
    const liveness = this.options.liveness ?? LIVENESS_DEFAULTS;
    if (liveness === false || this.serverMaxFrameSize !== undefined || this.closed) return;
    const window = liveness.probeAfter + liveness.answerWithin;
    clearTimeout(this.connectTimer);
    const socket = this.socket!;
    const verdict = (): void => {
      const waiting = what === 'hello' ? this.serverMaxFrameSize === undefined : !this.opened;
      if (!waiting || this.closed) return;
      socket.destroy(
        new Error(`no ${what} from the server within ${window} ms of connecting (option: liveness)`),
      );
    };
    this.connectTimer = setTimeout(() => setImmediate(verdict), window);
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
    if (
      this.used !== this.usedAtCheck ||
      this.pending.size > 0 ||
      this.roomWaiters.length > 0 ||
      this.events.size > 0
    ) {
      this.usedAtCheck = this.used;
      this.quietChecks = 0;
      return;
    }
    if (++this.quietChecks < 2) return;
    this.closedIdle = true;
    this.close();
  };

  /** The server said how large a frame it accepts: fail what is queued over it, then start sending. */
  private onServerHello(maxFrameSize: number | undefined, version: ProtocolVersion | undefined): void {
    if (this.serverMaxFrameSize !== undefined) return;
    // Nothing was sent yet but the hello: what waits fails as unreachable, to be tried elsewhere.
    if (!isCompatible(version))
      return this.fail(
        new Error(
          `the server speaks protocol ${formatVersion(version!)}, this caller ${formatVersion(PROTOCOL_VERSION)}`,
        ),
      );
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
    // A server closes a connection whose hello came late (its helloTimeout): after a stall of this caller,
    // the server's hello and its close are read in one poll, and what was sent now would be lost after
    // sending. Sending waits one turn of the loop, when such a close has been read: what is queued then
    // fails as unreachable, never sent, and goes to another replica.
    setImmediate(this.startAfterHello);
  }

  private readonly startAfterHello = (): void => {
    if (this.closed) return;
    if (this.socket?.readableEnded === true)
      return this.fail(new Error('the server closed the connection before anything was sent'));
    this.startSending();
    this.admitWaiting();
  };

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
    if (frame.type === 'unknown') return this.options.onUnknownFrame?.(frame.frameType);
    if (frame.type === FrameType.HELLO) return this.onServerHello(frame.maxFrameSize, frame.version);
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
    this.failWaiting(reason, error);
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
  const v = versionToArray(PROTOCOL_VERSION);
  const hello =
    caller === undefined
      ? { max: maxFrameSize, v }
      : { id: caller.id, iid: caller.iid, max: maxFrameSize, v };
  const frame = helloEncoder.encodeOne([FrameType.HELLO, hello]);
  return SENDS_TEST_EXTENSIONS ? Buffer.concat([frame, helloEncoder.encodeOne(TEST_EXTENSION_FRAME)]) : frame;
}
