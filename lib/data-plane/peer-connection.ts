import net from 'node:net';
import tls from 'node:tls';
import { KableDataPlaneError } from './data-plane-errors.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameWriter } from './frame-writer.js';
import { LIVENESS_DEFAULTS, PeerLiveness, type LivenessOptions } from './peer-liveness.js';
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
  /** Largest frame accepted from the server, bytes (default 16 MiB). */
  maxFrameSize?: number;
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
}

export type PeerConnectionStatus = 'connecting' | 'open' | 'closed';

interface Pending {
  observer: ReplyObserver | undefined;
  pattern: string;
  /** Handed to the socket: from then on a failure may mean the handler ran. */
  written: boolean;
  describe?: (lists: PatternLists) => void;
}

/**
 * One persistent, multiplexed connection to one peer. Connects on first use; every request and event
 * goes through it, batched. When it breaks, requests never written fail as retryable
 * (KABLE_PEER_UNREACHABLE) and requests already written fail at once as KABLE_PEER_LOST.
 */
export class PeerConnection {
  private socket: net.Socket | undefined;
  private readonly writer = new FrameWriter();
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private unwritten: number[] = [];
  private emitsWaiting: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private nextId = 1;
  private opened = false;
  private connectTimer: NodeJS.Timeout | undefined;
  status: PeerConnectionStatus = 'connecting';
  private readonly maxPending: number;
  readonly label: string;
  readonly liveness: PeerLiveness | undefined;
  /** Set when the peer left while still answering: closes once its last request is answered. */
  private retiring: string | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly options: PeerConnectionOptions = {},
  ) {
    this.label = `${host}:${port}`;
    this.decoder = new FrameDecoder(options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE);
    this.maxPending = options.maxPending ?? 10_000;
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

  get closed(): boolean {
    return this.status === 'closed';
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
    this.pending.set(id, { observer, pattern, written: false });
    this.unwritten.push(id);
    this.writer.write(
      metadata === undefined
        ? [FrameType.REQUEST, id, pattern, data]
        : [FrameType.REQUEST, id, pattern, data, metadata],
    );
    this.ensureConnected();
    if (this.opened) this.liveness?.waiting();
    return () => this.cancel(id);
  }

  /** Sends an event; resolves once handed to the socket, rejects (retryable) if it could not be. */
  sendEvent(pattern: string, data: unknown, metadata?: Metadata): Promise<void> {
    if (this.closed) return Promise.reject(this.unreachable(pattern, 'the connection is closed'));
    this.writer.write(
      metadata === undefined ? [FrameType.EVENT, pattern, data] : [FrameType.EVENT, pattern, data, metadata],
    );
    this.ensureConnected();
    return new Promise((resolve, reject) => this.emitsWaiting.push({ resolve, reject }));
  }

  /** Asks the node which patterns it serves. */
  describe(timeoutMs: number): Promise<PatternLists> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new KableDataPlaneError(
            'KABLE_TIMEOUT',
            `${this.label} did not describe its patterns within ${timeoutMs} ms.`,
            true,
          ),
        );
      }, timeoutMs);
      const id = this.allocateId();
      this.pending.set(id, {
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
      });
      this.unwritten.push(id);
      this.writer.write([FrameType.DESCRIBE, id]);
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
    if (!this.closed) this.writer.write([FrameType.CANCEL, id]);
    this.closeIfRetired();
  }

  private closeIfRetired(): void {
    if (this.retiring !== undefined && this.pending.size === 0) this.close(this.retiring);
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
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => this.onOpen());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(undefined));
  }

  private onOpen(): void {
    if (this.opened || this.closed) return;
    this.opened = true;
    clearTimeout(this.connectTimer);
    this.status = 'open';
    this.options.onStatus?.('open');
    if (this.options.hello !== undefined) {
      // The hello must go first: queue it ahead of what is already encoded by writing it straight out.
      this.socket!.write(helloFrame(this.options.hello));
    }
    this.writer.attach(this.socket!);
    if (this.pending.size > 0) this.liveness?.waiting();
  }

  private markWritten(): void {
    for (const id of this.unwritten) {
      const pending = this.pending.get(id);
      if (pending !== undefined) pending.written = true;
    }
    this.unwritten = [];
    const emits = this.emitsWaiting;
    this.emitsWaiting = [];
    for (const waiting of emits) waiting.resolve();
  }

  private onData(chunk: Buffer): void {
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
    if (frame.type === FrameType.HELLO || frame.type === FrameType.EVENT || frame.type === FrameType.REQUEST)
      return;
    if (frame.type === FrameType.PONG || frame.type === FrameType.PING) return; // arrival was the news
    const pending = this.pending.get(frame.id);
    if (pending === undefined) return; // cancelled meanwhile
    if (this.retiring !== undefined) queueMicrotask(() => this.closeIfRetired());
    const observer = pending.observer;
    switch (frame.type) {
      case FrameType.NEXT:
        if (frame.last) {
          this.pending.delete(frame.id);
          observer?.next(frame.value);
          observer?.complete();
        } else observer?.next(frame.value);
        return;
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

  private fail(error: Error | undefined, departed?: string): void {
    if (this.closed) return;
    this.status = 'closed';
    clearTimeout(this.connectTimer);
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
    const emits = this.emitsWaiting;
    this.emitsWaiting = [];
    for (const waiting of emits) waiting.reject(this.unreachable('(event)', reason, error));
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
function helloFrame(caller: CallerIdentity): Buffer {
  helloEncoder ??= new FrameWriter();
  return helloEncoder.encodeOne([FrameType.HELLO, { id: caller.id, iid: caller.iid }]);
}
