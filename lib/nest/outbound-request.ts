import type { Observer, Unsubscribable } from 'rxjs';
import type { PeerConnection, ReplyObserver } from '../data-plane/peer-connection.js';
import type { PeerLanes } from '../data-plane/peer-lanes.js';
import { KableError } from '../node/errors.js';
import type { PeerRecord } from '../node/peer-record.js';
import type { EndOfTurn, TurnWaiter } from '../node/end-of-turn.js';
import type { KeysInFlight } from '../node/keys-in-flight.js';
import type { OutboundTrace } from '../telemetry/telemetry.js';
import type { PatternRouter } from './pattern-router.js';
import { DeadlineEntry, type RequestDeadlines } from './request-deadlines.js';

export interface RequestSettings {
  pickTimeout: number;
  /** Milliseconds a node that refused or was unreachable is skipped (unless it advertises sooner). */
  avoidFor: number;
  timeout: number;
  retries: number;
}

/**
 * A reply that says the replica is failing rather than answering: the connection was lost, or the handler
 * threw something other than an RpcException, which Nest's exception filter sends as exactly
 * `{ status: 'error', message: 'Internal server error' }`. An RpcException's payload is the application's
 * answer and never counts (one built to look exactly like that object cannot be told apart).
 */
function isReplicaFailure(error: unknown): boolean {
  if (error instanceof KableError) return error.code === 'KABLE_PEER_LOST';
  if (error === null || typeof error !== 'object') return false;
  const reply = error as { status?: unknown; message?: unknown };
  return (
    reply.status === 'error' && reply.message === 'Internal server error' && Object.keys(error).length === 2
  );
}

function codeOf(error: unknown): string | undefined {
  return error instanceof KableError ? error.code : undefined;
}

/** Data-plane failures say whether the request certainly never reached a handler. */
function isRetryable(error: unknown): boolean {
  return error instanceof KableError && (error as KableError & { retryable?: boolean }).retryable === true;
}

/**
 * One `send()`: wait for a node that serves the pattern, send, and retry on the next replica when the
 * request failed before it left (refused, unreachable). A failure after it left is final: the handler
 * may have run, and running it twice is worse than an error. Every wait is bounded by `timeout`, kept in
 * the client's one deadline list rather than a timer per request.
 */
export class OutboundRequest extends DeadlineEntry implements ReplyObserver, Unsubscribable, TurnWaiter {
  private attempts = 0;
  private finished = false;
  private cancelCurrent: (() => void) | undefined;
  private peer: PeerRecord | undefined;
  /** The connection of the current attempt: asked, on timeout, whether the request still waits for room. */
  private connection: PeerConnection | undefined;
  /** Made only when a request must wait for a node: AbortControllers are costly on the hot path. */
  private waiting: AbortController | undefined;
  /** True while no node serves the pattern and the request waits for one (nothing is in flight). */
  private waitingForNode = false;
  /** Its data is a large binary or string: it travels in the peer's bulk lane (see peer-lanes.ts). */
  private readonly bulk: boolean;
  /** performance.now() when the current attempt was sent (0: no reply to time). */
  private sentAt = 0;
  /** The key hash counted in `keys` for the attempt in flight, released once when it ends. */
  private counted: number | undefined;
  /** It has waited for the end of a turn once (a keyed request waits at most once: see `start`). */
  private waitedTurn = false;
  /** The key's replica while it waits for room there (TurnWaiter): a reply from it is a look sooner. */
  home: string | undefined;

  constructor(
    private readonly deadlines: RequestDeadlines,
    private readonly router: PatternRouter,
    private readonly pool: PeerLanes,
    private readonly settings: RequestSettings,
    private readonly pattern: string,
    private readonly data: unknown,
    private readonly metadata: Record<string, unknown> | undefined,
    private readonly subscriber: Observer<unknown>,
    /** Its span and metrics, when OpenTelemetry is installed. */
    private readonly trace?: OutboundTrace,
    /** Its affinity key's hash (keyHash), if it has one: it goes to the key's replica (see rendezvous.ts). */
    private key?: number,
    /** This caller's requests in flight per affinity key: each keyed attempt counts while it is in flight. */
    private readonly keys?: KeysInFlight,
    /** Where a keyed request whose replica is over its load limit waits for the turn's replies once. */
    private readonly turn?: EndOfTurn,
  ) {
    super();
    this.bulk = pool.isBulk(data);
    deadlines.add(this, settings.timeout);
  }

  start(): void {
    const key = this.key;
    if (key !== undefined && this.turn !== undefined && !this.waitedTurn) {
      const home = this.router.next(this.pattern, key, this.inFlightOf(key), false);
      if (home !== undefined) return this.sendTo(home);
      // Served, but the key's replica is over its limit by the counts of this moment. This may be the
      // middle of the turn's reads: replies from that replica may already be received, in a socket
      // read after this one. Once, the request waits: it goes home as soon as a read of that replica's
      // replies leaves it within the limit (`homeReplied`), else at the end of the turn it looks again
      // and passes on if the replica is still over (see rendezvous.ts). A full wait list: it passes on now.
      const first = this.router.home(this.pattern, key);
      if (first !== undefined) {
        this.waitedTurn = true;
        this.home = first.iid;
        if (this.turn.add(this)) return;
        this.home = undefined;
      }
    }
    const ready = this.pick();
    if (ready !== undefined) return this.sendTo(ready);
    // Only nodes of another major protocol version may serve it: no use waiting for them.
    const incompatible = this.router.incompatibleOnly(this.pattern, 'messages');
    if (incompatible !== undefined) return this.fail(incompatible);
    const { pickTimeout, timeout } = this.settings;
    this.waitingForNode = true;
    this.router
      .waitFor(
        () => this.pick(),
        `pattern "${this.pattern}"`,
        Math.min(pickTimeout, timeout),
        (this.waiting ??= new AbortController()).signal,
        pickTimeout < timeout ? 'pickTimeout' : 'timeout',
      )
      .then(
        (peer) => {
          this.waitingForNode = false;
          this.sendTo(peer);
        },
        (error: unknown) => this.fail(error),
      );
  }

  /** The end of the turn it waited for (TurnWaiter): picks again, unless it ended or left meanwhile. */
  endOfTurn(): void {
    if (this.finished || this.home === undefined) return;
    this.home = undefined;
    this.start();
  }

  /** A reply from the key's replica was read (TurnWaiter): goes there if it is now within the limit. */
  homeReplied(): void {
    if (this.finished || this.home === undefined) return;
    const key = this.key!;
    const home = this.router.next(this.pattern, key, this.inFlightOf(key), false);
    if (home === undefined) return;
    this.home = undefined;
    this.sendTo(home);
  }

  /** This caller's requests of `key` in flight (0 when keys are not counted). */
  private inFlightOf(key: number): number {
    return this.keys === undefined ? 0 : this.keys.of(key);
  }

  /** The key's replica (told how many of the key's requests are in flight), else the next in turn. */
  private pick(): PeerRecord | undefined {
    const key = this.key;
    return (
      (key === undefined
        ? this.router.next(this.pattern)
        : this.router.next(this.pattern, key, this.inFlightOf(key))) ??
      this.router.targetWithoutHandler(this.pattern)
    );
  }

  /** The keyed attempt in flight ended (answered, failed, cancelled, or about to be retried). */
  private uncount(): void {
    if (this.counted === undefined) return;
    this.keys!.release(this.counted);
    this.counted = undefined;
  }

  /**
   * The whole request's deadline. If it ends the wait for a node, the caller learns that nobody serves
   * the pattern (KABLE_NO_NODE), not that a server was slow: nothing was in flight. Called by the
   * deadline list, which has already taken this request out.
   */
  onDeadline(): void {
    const { timeout } = this.settings;
    if (this.waitingForNode) {
      this.fail(this.router.unserved(`pattern "${this.pattern}"`, timeout, 'timeout'));
      return;
    }
    // Still in this caller's own queue, or waiting for room in it (a bulk upload's normal state): the
    // replica never had the request, so its timeout says nothing of the replica and does not count
    // toward ejection.
    if (this.connection?.isUnsent(this) !== true) this.replicaFailed();
    this.fail(
      new KableError(
        'KABLE_TIMEOUT',
        `Request "${this.pattern}" did not complete within ${timeout} ms (option: timeout).`,
      ),
    );
  }

  /**
   * The subscriber unsubscribed (the request is its Observable's teardown, so rxjs calls this): stop
   * waiting, and cancel on the server what was sent.
   */
  unsubscribe(): void {
    if (this.finished) return;
    this.finished = true;
    this.uncount();
    this.trace?.cancel();
    this.deadlines.remove(this);
    this.waiting?.abort();
    this.cancelCurrent?.();
  }

  private sendTo(peer: PeerRecord): void {
    if (this.finished) return;
    const attempt = ++this.attempts;
    this.peer = peer;
    let connection = this.pool.get(peer, this.bulk);
    if (!connection.hasRoom) {
      // Its queue is full (requests wait there for room): another replica with room takes the request,
      // else it waits for room, in turn, where fewest wait. A full queue is the normal state of a bulk
      // upload, not a sign that the replica is bad: it is not avoided.
      const other = this.elsewhere(peer);
      if (other !== undefined) {
        this.peer = peer = other;
        connection = this.pool.get(other, this.bulk);
      }
    }
    this.trace?.attempt(peer);
    if (this.router.health !== undefined) this.sentAt = performance.now();
    // Counted before the send: a connection that refuses at once calls error(), which releases it.
    if (this.key !== undefined && this.keys !== undefined) {
      this.keys.add(this.key);
      this.counted = this.key;
    }
    // The request is its own reply observer: no observer object and closures per attempt. A connection
    // calls nothing after an error, so a retried request hears only from its current attempt.
    this.connection = connection;
    const cancel = connection.request(this.pattern, this.data, this.metadata, this);
    // A connection that refuses at once has already called error(), which may have sent the request to
    // the next replica and kept that attempt's cancel: this attempt's (a no-op) must not replace it.
    if (this.attempts === attempt && !this.finished) this.cancelCurrent = cancel;
  }

  /**
   * Where to send instead of `full`, whose queue is full: the next replica in the rotation with room;
   * else the one where fewest requests wait for room, if fewer than at `full` (a replica that stopped
   * reading keeps its line, one that reads shortens it); else none.
   */
  private elsewhere(full: PeerRecord): PeerRecord | undefined {
    const count = this.router.candidates(this.pattern, 'messages').length;
    let shortest: PeerRecord | undefined;
    let fewest = this.pool.waitingForRoom(full.iid, this.bulk);
    for (let i = 1; i < count; i++) {
      const other = this.router.next(this.pattern);
      if (other === undefined || other === full) continue;
      if (this.pool.hasRoom(other.iid, this.bulk)) return other;
      const waiting = this.pool.waitingForRoom(other.iid, this.bulk);
      if (waiting < fewest) {
        fewest = waiting;
        shortest = other;
      }
    }
    return shortest;
  }

  /** A value from the server (ReplyObserver). */
  next(value: unknown): void {
    if (this.finished) return;
    this.trace?.value();
    this.subscriber.next(value);
  }

  /** The reply ended (ReplyObserver). */
  complete(): void {
    // Also after a cancel: firstValueFrom unsubscribes on the last value, just before this.
    this.uncount();
    if (this.peer !== undefined) this.turn?.replied(this.peer.iid);
    this.trace?.end();
    this.answered();
    if (this.finished) return;
    this.finished = true;
    this.deadlines.remove(this);
    this.subscriber.complete();
  }

  /** The attempt failed (ReplyObserver): retried elsewhere when it certainly never reached a handler. */
  error(error: unknown): void {
    // Before a retry picks again: this attempt is no longer in flight.
    this.uncount();
    if (this.peer !== undefined) this.turn?.replied(this.peer.iid);
    if (isReplicaFailure(error)) this.replicaFailed();
    else if (codeOf(error) === undefined) this.recovered();
    if (this.finished) return;
    this.cancelCurrent = undefined;
    // A node that refused, could not be reached or dropped the connection is skipped until it advertises
    // again: sending it the next request would most likely fail the same way. Not one whose queue on
    // this side is at its cap (KABLE_BACKPRESSURE: maxPending): that is this caller's own load, and the
    // retry below goes to the next replica anyway.
    const code = codeOf(error);
    if (
      this.peer !== undefined &&
      code !== 'KABLE_BACKPRESSURE' &&
      (isRetryable(error) || code === 'KABLE_PEER_LOST')
    ) {
      this.router.avoid(this.peer.iid, this.settings.avoidFor);
    }
    if (isRetryable(error) && this.attempts <= this.settings.retries) {
      this.trace?.retry(error);
      // This caller's queue to the key's replica is full and it is not avoided: the key would lead back
      // to it, so the retry goes round robin.
      if (code === 'KABLE_BACKPRESSURE') this.key = undefined;
      // The next replica in the rotation; waits (bounded) if the failed one was the last RUNNING.
      this.start();
      return;
    }
    this.fail(error);
  }

  /** The replica answered (a value or an application error): its latency estimate learns the time. */
  private answered(): void {
    const health = this.router.health;
    if (health === undefined || this.sentAt === 0 || this.peer === undefined) return;
    health.answered(health.of(this.peer.iid, this.peer.id), performance.now() - this.sentAt);
    this.sentAt = 0;
  }

  /** The replica answered with the application's error: it works (its time is no latency sample). */
  private recovered(): void {
    const health = this.router.health;
    if (health === undefined || this.sentAt === 0 || this.peer === undefined) return;
    health.recovered(health.of(this.peer.iid, this.peer.id));
    this.sentAt = 0;
  }

  /** The replica lost the connection, timed out or failed internally: counted towards its ejection. */
  private replicaFailed(): void {
    const health = this.router.health;
    if (health === undefined || this.sentAt === 0 || this.peer === undefined) return;
    health.failed(health.of(this.peer.iid, this.peer.id));
    this.sentAt = 0;
  }

  private fail(error: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.uncount();
    this.trace?.end(error);
    this.deadlines.remove(this);
    this.waiting?.abort();
    this.cancelCurrent?.();
    this.subscriber.error(error);
  }
}
