import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { KableWarning } from '../node/errors.js';
import {
  formatVersion,
  isCompatible,
  PROTOCOL_VERSION,
  SENDS_TEST_EXTENSIONS,
  versionToArray,
} from '../node/protocol-version.js';
import { WarningLimiter } from '../node/warning-limiter.js';
import { CONNECTION_DEADLINE_DEFAULTS, type ConnectionDeadlines } from './connection-deadlines.js';
import { FrameDecoder, type DecodeFailure } from './frame-decoder.js';
import { FrameWriter } from './frame-writer.js';
import { readRequestFrame, type RequestHandler } from './request-frame.js';
import { whatCannotBeEncoded } from './unencodable.js';
import {
  DEFAULT_MAX_FRAME_SIZE,
  FrameType,
  parseFrame,
  TEST_EXTENSION_FRAME,
  type CallerIdentity,
  type Metadata,
  type PatternLists,
} from './frames.js';

export type { CallerIdentity };

export interface InboundRequest {
  id: number;
  pattern: string;
  data: unknown;
  metadata?: Metadata;
  caller?: CallerIdentity;
}

/** How a handler answers one request. Calls after the first terminal one are ignored. */
export interface ReplyChannel {
  /** One value; with `last`, the final one (the stream completes with it). */
  next(value: unknown, last?: boolean): void;
  error(error: unknown): void;
  complete(): void;
  /** Not served, safe to retry elsewhere (the node is not RUNNING, for example). */
  refuse(reason: string): void;
  /** True once answered, cancelled or disconnected. */
  readonly closed: boolean;
  /**
   * Set when the data plane ended the reply with an error of its own instead of what it was given (a
   * reply over the caller's maxFrameSize, one MessagePack cannot encode, a stream cut by back-pressure):
   * the error the caller got. Set before the handler is cancelled.
   */
  readonly replacedBy?: ReplacedReply;
}

/** An error reply the data plane sent in place of the handler's (see `ReplyChannel.replacedBy`). */
export interface ReplacedReply {
  status: 'error';
  code: 'KABLE_PAYLOAD_TOO_LARGE' | 'KABLE_UNENCODABLE' | 'KABLE_BACKPRESSURE';
  message: string;
  size?: number;
  limit?: number;
}

export interface DataPlaneHandler {
  /** Returns a function that cancels the work (called on CANCEL or when the caller disconnects). */
  request(request: InboundRequest, reply: ReplyChannel): (() => void) | void;
  event(pattern: string, data: unknown, metadata: Metadata | undefined, caller?: CallerIdentity): void;
  describe(): PatternLists;
}

/** The deadlines and per-address cap (see connection-deadlines.ts), each defaulted on its own. */
export interface DataPlaneServerOptions extends Partial<ConnectionDeadlines> {
  /** Largest frame accepted, bytes (default 16 MiB); a larger one closes the connection. */
  maxFrameSize?: number;
  /** Most connections at once (default 10000); more are refused by the listening socket. */
  maxConnections?: number;
  /** Most requests in flight on one connection (default 10000); more are answered REFUSED. */
  maxInFlightPerConnection?: number;
  /**
   * Unsent reply bytes of one connection past which the server stops reading its requests, until they
   * drain to half (default 8 MiB, at least 64 KiB). A client that never reads costs at most this plus
   * one frame.
   */
  writeHighWaterMark?: number;
  /**
   * Unsent reply bytes of one connection past which a stream still emitting on it (a handler's
   * Observable) is cut: it ends with a KABLE_BACKPRESSURE error and is unsubscribed (default 128 MiB, at
   * least writeHighWaterMark). An Observable cannot be paused, so this is what bounds the memory a
   * stream to a slow or stalled caller takes: at most this plus one frame per connection.
   */
  maxStreamBacklog?: number;
  /** Makes the listening server (TLS plugs in here, with its handshake timeout). Default: plain TCP. */
  createServer?: (onConnection: (socket: net.Socket) => void, handshakeTimeout: number) => net.Server;
}

/**
 * Past this many unsent bytes a socket's write() says "wait for drain" (Node's default for sockets is
 * 16 KiB): a mark at least this high guarantees that a paused connection gets a 'drain' to resume on.
 */
/**
 * While a caller's frame is arriving, the server sends it an unasked PONG at most this often (ms): the
 * smallest `liveness.probeAfter` a caller accepts, so no caller finds a server that reads its upload
 * silent. At most 100 frames of 7 bytes a second per connection reading a partial frame.
 *
 * Why the reader tells, rather than the caller judging its own writes or its PING jumping the queue: a
 * PING cannot overtake a frame already started (frames are not interleaved) nor the bytes already in the
 * socket and the kernels; and what the caller can see of its bytes leaving is coarse: Linux wakes a
 * writer when a third of the send buffer (up to 4 MiB) is free, so at 7 MB/s over loopback the bytes
 * handed to the kernel moved in steps up to 314 ms apart, and at a few MB/s a step takes longer than the
 * whole liveness window. The server, reading, sees every chunk as it arrives, and its event loop running
 * is what liveness asks about. A frozen server reads nothing and sends nothing: still found unresponsive.
 */
export const READING_NOTICE_EVERY = 10;

export const MIN_WRITE_HIGH_WATER_MARK = 64 * 1024;

export const DEFAULT_MAX_CONNECTIONS = 10_000;

export interface DataPlaneServerEvents {
  warning: [warning: KableWarning];
  /** No request is in flight any more. */
  idle: [];
}

/**
 * The serving side of the data plane: accepts connections, decodes frames, hands requests to the
 * handler and writes its replies back, batched. A connection that sends anything malformed is closed
 * and counted; the others are not disturbed.
 */
export class DataPlaneServer extends EventEmitter<DataPlaneServerEvents> {
  private readonly server: net.Server;
  private readonly connections = new Set<ServerConnection>();
  /** Open sockets per remote address (TLS handshakes in progress included), for maxConnectionsPerAddress. */
  private readonly perAddress = new Map<string, number>();
  /** Raw sockets refused for their address: over TLS their reset must not count as a refused handshake. */
  private readonly overCap = new WeakSet<net.Socket>();
  readonly deadlines: ConnectionDeadlines;
  /** One timer for every connection's deadlines, running while there is a connection. */
  private sweepTimer: NodeJS.Timeout | undefined;
  private verdicts: NodeJS.Immediate | undefined;
  private readonly sweepEvery: number;
  private readonly warnings: WarningLimiter;
  readonly maxFrameSize: number;
  readonly maxInFlightPerConnection: number;
  readonly writeHighWaterMark: number;
  readonly maxStreamBacklog: number;
  private inFlightCount = 0;
  private closing: Promise<void> | undefined;
  /** Set while close() waits for the last connection's 'close'. */
  private onUntracked: (() => void) | undefined;
  /** @internal */
  readonly counters = {
    connections: 0,
    requests: 0,
    events: 0,
    refusedRequests: 0,
    cancelled: 0,
    /** Times a connection was paused because its client did not read its replies. */
    readPauses: 0,
    /** Replies over the caller's maxFrameSize, answered with KABLE_PAYLOAD_TOO_LARGE instead. */
    oversizedReplies: 0,
    /** Most unsent reply bytes one connection has held at once. */
    peakConnectionBacklog: 0,
    /** Streams cut with KABLE_BACKPRESSURE: their caller did not read as fast as they emitted. */
    cutStreams: 0,
    /** Well-formed frames of a type this version does not know (a later minor's): ignored. */
    unknownFrames: 0,
    /** Connections closed after idleTimeout with nothing in flight (not a fault: see connection-deadlines.ts). */
    idleClosed: 0,
  };
  /** Bytes of connections already closed (the open ones are read from their sockets). */
  private closedBytes = { in: 0, out: 0 };

  constructor(
    readonly handler: DataPlaneHandler,
    options: DataPlaneServerOptions = {},
  ) {
    super();
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.maxInFlightPerConnection = options.maxInFlightPerConnection ?? 10_000;
    this.writeHighWaterMark = Math.max(
      MIN_WRITE_HIGH_WATER_MARK,
      options.writeHighWaterMark ?? 8 * 1024 * 1024,
    );
    this.maxStreamBacklog = Math.max(this.writeHighWaterMark, options.maxStreamBacklog ?? 128 * 1024 * 1024);
    this.warnings = new WarningLimiter((warning) => {
      if (this.listenerCount('warning') > 0) this.emit('warning', warning);
    });
    const deadlines = { ...CONNECTION_DEADLINE_DEFAULTS };
    for (const key of Object.keys(deadlines) as Array<keyof ConnectionDeadlines>) {
      if (options[key] !== undefined) deadlines[key] = options[key];
    }
    this.deadlines = deadlines;
    // Each deadline is met within a quarter of it more (the shortest sets the pace).
    this.sweepEvery = Math.max(
      5,
      Math.floor(Math.min(deadlines.helloTimeout, deadlines.partialFrameTimeout, deadlines.idleTimeout) / 4),
    );
    const accept = (socket: net.Socket) => this.accept(socket);
    this.server = options.createServer
      ? options.createServer(accept, deadlines.handshakeTimeout)
      : net.createServer(accept);
    this.server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    // Before the accept above (and, over TLS, before the handshake starts): the raw TCP connection.
    this.server.prependListener('connection', (socket: net.Socket) => this.admit(socket));
    this.server.on('error', (error) => this.warnings.count('serverError', String(error)));
    // A TLS server: a peer without the key (or a trusted certificate) fails the handshake here,
    // before any of its frames is read; so does one that does not finish it within handshakeTimeout.
    this.server.on('tlsClientError', (error: Error, socket: net.Socket) => {
      socket.destroy();
      // Node keeps the TCP socket a TLS socket wraps as `_parent`: one refused by admit() resets here.
      if (this.overCap.has((socket as { _parent?: net.Socket })._parent as net.Socket)) return;
      const code = (error as NodeJS.ErrnoException).code;
      this.warnings.count(
        code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshakeTimeout' : 'refusedConnection',
        `Refused a data-plane connection from ${socket.remoteAddress ?? 'unknown'}: ${code ?? error.message}.`,
      );
    });
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const address = this.server.address() as net.AddressInfo;
        resolve({ host, port: address.port });
      });
    });
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Resolves true once nothing is in flight, false if `timeoutMs` passes first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.inFlightCount === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.off('idle', onIdle);
        resolve(false);
      }, timeoutMs);
      const onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.once('idle', onIdle);
    });
  }

  /**
   * Stops accepting, cancels what is in flight, closes every connection, and resolves once each of them
   * has closed (their 'close' events come after net.Server's own close callback) or CLOSE_WAIT_MS passed.
   * Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
      if (this.verdicts !== undefined) clearImmediate(this.verdicts);
      for (const connection of this.connections) connection.destroy();
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    }).then(() => this.untracked());
    return this.closing;
  }

  /** Resolves once no connection is tracked, waiting at most CLOSE_WAIT_MS (destroyed sockets close within a tick or two). */
  private untracked(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.onUntracked = undefined;
        resolve();
      };
      const timer = setTimeout(done, CLOSE_WAIT_MS);
      this.onUntracked = done;
    });
  }

  stats(): Record<string, number> {
    // What the open connections hold right now: received bytes not yet decoded, replies not yet sent,
    // bytes through their sockets. Summed here, on demand, so the hot path pays nothing.
    let bufferedBytes = 0;
    let queuedBytes = 0;
    let pausedConnections = 0;
    let bytesIn = this.closedBytes.in;
    let bytesOut = this.closedBytes.out;
    for (const connection of this.connections) {
      bufferedBytes += connection.bufferedBytes;
      queuedBytes += connection.queuedBytes;
      if (connection.readingPaused) pausedConnections++;
      bytesIn += connection.socket.bytesRead;
      bytesOut += connection.socket.bytesWritten;
    }
    return {
      ...this.counters,
      bytesIn,
      bytesOut,
      openConnections: this.connections.size,
      inFlight: this.inFlightCount,
      addresses: this.perAddress.size,
      bufferedBytes,
      pausedConnections,
      queuedBytes,
      ...prefixed(this.warnings.counts),
    };
  }

  /** @internal */
  requestStarted(): void {
    this.inFlightCount++;
  }

  /** @internal */
  requestEnded(): void {
    this.inFlightCount--;
    if (this.inFlightCount === 0) this.emit('idle');
  }

  /** @internal A warning, rate-limited per kind (and counted in stats as `dropped.<kind>`). */
  warn(kind: string, message: string): void {
    this.warnings.count(kind, message);
  }

  /** @internal */
  reject(connection: ServerConnection, kind: string, reason: string): void {
    this.warnings.count(kind, `Closed a data-plane connection from ${connection.remote}: ${reason}.`);
    connection.destroy();
  }

  /** A TCP connection arrived: refused if its address already holds maxConnectionsPerAddress. */
  private admit(socket: net.Socket): void {
    const address = socket.remoteAddress ?? 'unknown';
    const open = this.perAddress.get(address) ?? 0;
    if (open >= this.deadlines.maxConnectionsPerAddress) {
      this.overCap.add(socket);
      socket.destroy();
      this.warnings.count(
        'tooManyFromAddress',
        `Refused a data-plane connection from ${address}: it already has ${open} open (maxConnectionsPerAddress).`,
      );
      return;
    }
    this.perAddress.set(address, open + 1);
    socket.once('close', () => {
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
  }

  private accept(socket: net.Socket): void {
    if (this.closing !== undefined || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.counters.connections++;
    const connection = new ServerConnection(this, socket, performance.now());
    this.connections.add(connection);
    this.sweepTimer ??= setInterval(this.sweep, this.sweepEvery).unref();
    socket.on('close', () => {
      this.closedBytes.in += socket.bytesRead;
      this.closedBytes.out += socket.bytesWritten;
      this.connections.delete(connection);
      connection.closed();
      if (this.connections.size === 0) this.onUntracked?.();
    });
  }

  /**
   * Every connection's deadlines, on one timer: activity is read from counters the connection bumps
   * (per chunk read, per request answered), so the hot path takes no clock and arms no timer.
   */
  private readonly sweep = (): void => {
    if (this.connections.size === 0) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
      return;
    }
    // Judged after the event loop has polled its sockets once more (timers run before the poll): a
    // server that was itself stalled reads what its clients sent meanwhile before it judges them.
    this.verdicts ??= setImmediate(this.judge);
  };

  private readonly judge = (): void => {
    this.verdicts = undefined;
    if (this.closing !== undefined) return;
    const now = performance.now();
    const { helloTimeout, partialFrameTimeout, idleTimeout } = this.deadlines;
    for (const connection of this.connections) {
      const verdict = connection.check(now, helloTimeout, partialFrameTimeout, idleTimeout);
      if (verdict === 'idle') {
        this.counters.idleClosed++;
        connection.destroy();
      } else if (verdict === 'helloTimeout') {
        this.reject(connection, verdict, `no frame within ${helloTimeout} ms of connecting (helloTimeout)`);
      } else if (verdict === 'partialFrameTimeout') {
        this.reject(
          connection,
          verdict,
          `${connection.bufferedBytes} bytes of a frame, then nothing for ${partialFrameTimeout} ms (partialFrameTimeout)`,
        );
      }
    }
  };
}

/** How long close() waits for its destroyed connections' 'close' events. */
const CLOSE_WAIT_MS = 2000;

function prefixed(counts: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, count] of Object.entries(counts)) out[`dropped.${kind}`] = count;
  return out;
}

class Reply implements ReplyChannel {
  done = false;
  cancel: (() => void) | undefined;
  replacedBy: ReplacedReply | undefined;

  constructor(
    private readonly connection: ServerConnection,
    readonly id: number,
    readonly pattern: string,
  ) {}

  get closed(): boolean {
    return this.done;
  }

  next(value: unknown, last = false): void {
    if (this.done) return;
    if (last) {
      if (this.connection.replyValue(this, value, true)) this.connection.finish(this);
    } else if (this.connection.streamBacklogged) this.connection.cutStream(this);
    else this.connection.replyValue(this, value, false);
  }

  error(error: unknown): void {
    if (this.done) return;
    if (this.connection.reply(this, [FrameType.ERROR, this.id, error])) this.connection.finish(this);
  }

  complete(): void {
    if (this.done) return;
    this.connection.write([FrameType.COMPLETE, this.id]);
    this.connection.finish(this);
  }

  refuse(reason: string): void {
    if (this.done) return;
    this.connection.server.counters.refusedRequests++;
    this.connection.write([FrameType.REFUSED, this.id, reason]);
    this.connection.finish(this);
  }
}

class ServerConnection {
  private readonly decoder: FrameDecoder;
  /** Replies leave once per tick, not in slices (see CALLER_SLICE_FRAMES). */
  private readonly writer = new FrameWriter(Infinity);
  private readonly replies = new Map<number, Reply>();
  private readonly deliver = (value: unknown): void => this.onValue(value);
  /** A request read by hand (request-frame.ts), the codec skipped. */
  private readonly onRequest: RequestHandler = (id, pattern, data, metadata) => {
    if (this.gone) return;
    try {
      this.startRequest(id, pattern, data, metadata);
    } catch (error) {
      this.handlerThrew(error);
    }
  };
  private caller: CallerIdentity | undefined;
  /** Largest frame the client accepts: from its hello; the default until then. */
  private callerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private gone = false;
  private paused = false;
  /** When the caller was last told that a frame of its is being read (see noticeReading). */
  private noticedAt = -Infinity;
  readonly remote: string;
  private readonly created: number;
  /** Bumped on every chunk read, request answered and resume: the sweep compares it, no clock here. */
  private activity = 0;
  private seenActivity = 0;
  /** Bytes read so far: more than the decoder holds once a whole frame came (the hello deadline is met). */
  private received = 0;
  private greeted = false;

  constructor(
    readonly server: DataPlaneServer,
    readonly socket: net.Socket,
    /** When the sweep last saw activity (performance.now()). */
    private lastActive: number,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.created = lastActive;
    this.decoder = new FrameDecoder(server.maxFrameSize, (bytes, start, end) =>
      readRequestFrame(bytes, start, end, this.onRequest),
    );
    socket.setNoDelay(true);
    this.writer.attach(socket);
    // First frame out: the largest frame this server accepts, so the client checks sizes before sending.
    this.writer.write([FrameType.HELLO, { max: server.maxFrameSize, v: versionToArray(PROTOCOL_VERSION) }]);
    if (SENDS_TEST_EXTENSIONS) this.writer.write(TEST_EXTENSION_FRAME);
    // Only on 'drain', which never comes in the middle of decoding: resuming hands out held frames.
    socket.on('drain', () => this.resumeIfDrained());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      if (this.decoder.pendingBytes > 0)
        this.server.reject(this, 'truncatedFrame', 'the stream ended mid-frame');
      else socket.end();
    });
    socket.on('error', () => socket.destroy());
  }

  /** Unsent reply bytes plus received bytes not yet decoded. */
  get bufferedBytes(): number {
    return this.backlog + this.decoder.pendingBytes;
  }

  get readingPaused(): boolean {
    return this.paused;
  }

  write(frame: unknown[]): void {
    if (this.gone) return;
    this.writer.write(frame);
    this.pauseIfBacklogged();
  }

  /**
   * Writes one reply frame. One over the caller's maxFrameSize is not sent: the request gets a
   * KABLE_PAYLOAD_TOO_LARGE error instead (and its handler is cancelled), the connection and its other
   * requests carry on. Returns false when the frame was replaced so.
   */
  reply(reply: Reply, frame: unknown[]): boolean {
    if (this.gone) return true;
    let size: number;
    try {
      size = this.writer.write(frame, this.callerMaxFrameSize);
    } catch (error) {
      return this.unencodable(reply, 'The error reply to', frame[2], error);
    }
    return this.sent(reply, size);
  }

  /** `reply` for a value (a NEXT frame), without building the frame's array: once per stream value. */
  replyValue(reply: Reply, value: unknown, last: boolean): boolean {
    if (this.gone) return true;
    let size: number;
    try {
      size = this.writer.writeValue(reply.id, value, last, this.callerMaxFrameSize);
    } catch (error) {
      return this.unencodable(reply, last ? 'The reply to' : 'A value of the stream', value, error);
    }
    return this.sent(reply, size);
  }

  /**
   * A reply value the codec threw on (a bigint, a circular object, too deep): the caller gets a
   * KABLE_UNENCODABLE error instead, saying where in the value, and the handler is cancelled (a stream
   * unsubscribed); the server warns (rate-limited) and serves on. Nothing of the value reached the batch
   * (see FrameWriter.encodeFailed). Returns false, as `sent` does for a reply it replaced.
   */
  private unencodable(reply: Reply, what: string, value: unknown, cause: unknown): false {
    this.writer.encodeFailed();
    const message =
      `${what} "${reply.pattern}" cannot be encoded as MessagePack ` +
      `(${whatCannotBeEncoded(cause, [['', value]])}); it was not sent.`;
    this.server.warn('unencodableReply', `${message} Caller: ${this.remote}.`);
    this.replace(reply, { status: 'error', code: 'KABLE_UNENCODABLE', message });
    return false;
  }

  /** Ends `reply` with the data plane's own error instead of what the handler gave, and cancels it. */
  private replace(reply: Reply, error: ReplacedReply): void {
    // Before the cancel: telemetry's cancel hook reads it, to record this error rather than a cancel.
    reply.replacedBy = error;
    this.write([FrameType.ERROR, reply.id, error]);
    this.cancel(reply);
  }

  /** After a reply frame of `size` bytes was offered to the writer: true if it went, as `reply` says. */
  private sent(reply: Reply, size: number): boolean {
    if (size <= this.callerMaxFrameSize) {
      this.pauseIfBacklogged();
      return true;
    }
    this.server.counters.oversizedReplies++;
    this.replace(reply, {
      status: 'error',
      code: 'KABLE_PAYLOAD_TOO_LARGE',
      message:
        `The reply to "${reply.pattern}" is ${size} bytes, over the ${this.callerMaxFrameSize}-byte limit ` +
        `of its caller (maxFrameSize); it was not sent.`,
      size,
      limit: this.callerMaxFrameSize,
    });
    return false;
  }

  /** True when a stream emitting on this connection must be cut (see maxStreamBacklog). */
  get streamBacklogged(): boolean {
    return this.backlog > this.server.maxStreamBacklog;
  }

  /** Ends a stream whose caller does not keep up, and unsubscribes its handler. */
  cutStream(reply: Reply): void {
    this.server.counters.cutStreams++;
    this.replace(reply, {
      status: 'error',
      code: 'KABLE_BACKPRESSURE',
      message:
        `The stream "${reply.pattern}" was cut: ${this.backlog} reply bytes were waiting for the caller ` +
        `(maxStreamBacklog ${this.server.maxStreamBacklog}); it does not read as fast as the stream emits.`,
    });
  }

  /** Replies not yet handed to the socket. */
  get queuedBytes(): number {
    return this.writer.queuedBytes;
  }

  finish(reply: Reply): void {
    reply.done = true;
    if (this.replies.delete(reply.id)) {
      this.activity++;
      this.server.requestEnded();
    }
  }

  /** What the sweep does with this connection now: a deadline it missed, 'idle', or nothing. */
  check(
    now: number,
    helloTimeout: number,
    partialFrameTimeout: number,
    idleTimeout: number,
  ): 'helloTimeout' | 'partialFrameTimeout' | 'idle' | undefined {
    if (this.gone) return undefined;
    if (this.activity !== this.seenActivity) {
      this.seenActivity = this.activity;
      this.lastActive = now;
    }
    if (!this.greeted) {
      if (this.received > this.decoder.pendingBytes) this.greeted = true;
      // Not since the last activity: a trickle of bytes must not hold the slot.
      else if (now - this.created >= helloTimeout) return 'helloTimeout';
    }
    const quiet = now - this.lastActive;
    // Paused, the decoder holds whole frames on purpose and the client waits for this side.
    if (this.decoder.pendingBytes > 0) {
      return !this.paused && quiet >= partialFrameTimeout ? 'partialFrameTimeout' : undefined;
    }
    return this.replies.size === 0 && quiet >= idleTimeout ? 'idle' : undefined;
  }

  destroy(): void {
    // At once, not at 'close': frames after a fault in the same chunk must not run, nor count again.
    this.gone = true;
    this.socket.destroy();
  }

  /** The socket closed: cancel whatever its requests are still doing. */
  closed(): void {
    this.gone = true;
    this.writer.discard();
    for (const reply of [...this.replies.values()]) this.cancel(reply);
  }

  private onData(chunk: Buffer): void {
    this.activity++;
    this.received += chunk.length;
    this.afterDecode(this.decoder.push(chunk, this.deliver));
    if (this.decoder.pendingBytes > 0 && !this.paused && !this.gone) this.noticeReading();
  }

  /**
   * This server is reading a frame that has not all arrived (a large upload, perhaps over a slow link):
   * tell the caller with a PONG, at most every READING_NOTICE_EVERY ms. A caller's PING waits behind its
   * own upload (frames are never interleaved, and the socket and both kernels hold what went before),
   * so it is answered only once the whole upload is read; meanwhile this PONG is what proves the event
   * loop runs: the caller's liveness takes any arrival as its answer (see peer-liveness.ts).
   */
  private noticeReading(): void {
    const now = performance.now();
    if (now - this.noticedAt < READING_NOTICE_EVERY) return;
    this.noticedAt = now;
    this.write([FrameType.PONG, 0]);
  }

  private afterDecode(failure: DecodeFailure | undefined): void {
    if (failure !== undefined && !this.gone) {
      this.server.reject(
        this,
        failure,
        failure === 'oversizedFrame' ? `a frame over ${this.server.maxFrameSize} bytes` : failure,
      );
    }
  }

  private onValue(value: unknown): void {
    if (this.gone) return;
    const frame = parseFrame(value);
    if (frame === undefined) {
      this.server.reject(this, 'unknownFrame', 'a frame of unknown shape');
      return;
    }
    if (frame.type === 'unknown') {
      this.server.counters.unknownFrames++;
      return;
    }
    const handler = this.server.handler;
    try {
      switch (frame.type) {
        case FrameType.REQUEST:
          this.startRequest(frame.id, frame.pattern, frame.data, frame.metadata);
          return;
        case FrameType.EVENT:
          this.server.counters.events++;
          handler.event(frame.pattern, frame.data, frame.metadata, this.caller);
          return;
        case FrameType.CANCEL: {
          const reply = this.replies.get(frame.id);
          if (reply !== undefined) this.cancel(reply);
          return;
        }
        case FrameType.DESCRIBE:
          this.write([FrameType.DESCRIPTION, frame.id, handler.describe()]);
          return;
        case FrameType.HELLO:
          if (!isCompatible(frame.version)) {
            const theirs = formatVersion(frame.version!);
            this.server.reject(
              this,
              'incompatibleVersion',
              `the caller speaks protocol ${theirs}, this server ${formatVersion(PROTOCOL_VERSION)}`,
            );
            return;
          }
          if (frame.caller !== undefined) this.caller = frame.caller;
          if (frame.maxFrameSize !== undefined) this.callerMaxFrameSize = frame.maxFrameSize;
          return;
        case FrameType.PING:
          // From the event loop, on purpose: a frozen or blocked process cannot answer.
          this.write([FrameType.PONG, frame.id]);
          return;
        default:
          this.server.reject(this, 'unexpectedFrame', `a frame of type ${frame.type} sent to a server`);
      }
    } catch (error) {
      this.handlerThrew(error);
    }
  }

  /** A REQUEST frame, whichever way it was read (the codec and parseFrame, or request-frame.ts). */
  private startRequest(id: number, pattern: string, data: unknown, metadata: Metadata | undefined): void {
    const handler = this.server.handler;
    this.server.counters.requests++;
    if (this.replies.has(id)) {
      this.server.reject(this, 'duplicateRequestId', `request id ${id} already in flight`);
      return;
    }
    const reply = new Reply(this, id, pattern);
    if (this.replies.size >= this.server.maxInFlightPerConnection) {
      reply.refuse('too many requests in flight on this connection');
      return;
    }
    this.replies.set(id, reply);
    this.server.requestStarted();
    const request: InboundRequest = { id, pattern, data };
    if (metadata !== undefined) request.metadata = metadata;
    if (this.caller !== undefined) request.caller = this.caller;
    const cancel = handler.request(request, reply);
    if (typeof cancel === 'function') {
      if (reply.done) return;
      reply.cancel = cancel;
    }
  }

  /** A throwing handler must not take the connection (or the process) down with it. */
  private handlerThrew(error: unknown): void {
    this.server.reject(this, 'handlerError', `the handler threw: ${String(error)}`);
  }

  private cancel(reply: Reply): void {
    if (reply.done) return;
    this.server.counters.cancelled++;
    this.finish(reply);
    try {
      reply.cancel?.();
    } catch {
      // Cancelling is best effort.
    }
  }

  private get backlog(): number {
    return this.socket.writableLength + this.writer.queuedBytes;
  }

  /**
   * Checked after every frame written, whatever the writer is doing (a writer waiting for 'drain' never
   * flushes, so a check on flush alone never runs against a client that stopped reading): past the
   * high-water mark, stop reading this client's requests, even those already received (the decoder
   * holds them), until its replies drain.
   */
  private pauseIfBacklogged(): void {
    const backlog = this.backlog;
    const counters = this.server.counters;
    if (backlog > counters.peakConnectionBacklog) counters.peakConnectionBacklog = backlog;
    if (this.paused || backlog <= this.server.writeHighWaterMark) return;
    this.paused = true;
    counters.readPauses++;
    this.socket.pause();
    this.decoder.hold();
  }

  private resumeIfDrained(): void {
    if (!this.paused || this.gone || this.backlog > this.server.writeHighWaterMark / 2) return;
    this.paused = false;
    // The client's silence while paused was this side's doing: the partial-frame clock starts again.
    this.activity++;
    // What was received meanwhile first; it may fill the backlog and pause again.
    this.afterDecode(this.decoder.release(this.deliver));
    if (!this.paused && !this.gone) this.socket.resume();
  }
}
