/** Something that waits for the end of the event loop's current turn (see `EndOfTurn`). */
export interface TurnWaiter {
  /** The turn's I/O has been read: act now. */
  endOfTurn(): void;
  /** The replica it waits for room at, if any: a reply from it (`replied`) lets it look again sooner. */
  readonly home?: string;
  /** A reply from `home` was read: it may act now (or go on waiting for the end of the turn). */
  homeReplied?(): void;
}

/** How many may wait for one turn's end by default; past it, `add` refuses and the caller acts at once. */
export const END_OF_TURN_CAP = 4096;

/**
 * Runs waiters once the event loop has read the I/O of its current turn: in a `setImmediate`, which
 * Node runs after the poll phase has called back every socket that was readable at once. A caller that
 * acts in the middle of that phase (on one socket's data, before the others') sees counts that the
 * other sockets' data, already received, is about to change; after it, it sees them all.
 *
 * One immediate for all the turn's waiters, not one each; at most `cap` wait at once.
 */
export class EndOfTurn {
  private waiting: TurnWaiter[] = [];
  /** The list of the turn being run, reused as the next turn's list (no array per turn). */
  private spare: TurnWaiter[] = [];
  private scheduled = false;
  /** Replicas whose replies were read since the last look (`replied`), and whether a look is due. */
  private repliedFrom: string[] = [];
  private looking = false;
  /** Writes held while requests wait (`hold`): they leave after the waiters, with theirs. */
  private held: (() => void)[] = [];
  /** Replicas a request of this turn waits (or waited) for room at: their writes are not held. */
  private readonly waitedFor: string[] = [];

  constructor(
    /** Told what a waiter threw; the other waiters still run. */
    private readonly onError: (error: unknown) => void,
    private readonly cap = END_OF_TURN_CAP,
  ) {
    if (!Number.isInteger(cap) || cap < 1) {
      throw new RangeError(`EndOfTurn cap must be an integer of at least 1; got ${cap}.`);
    }
  }

  /** Waiters not yet run. */
  get size(): number {
    return this.waiting.length;
  }

  /** Runs `waiter` at the end of this turn; false (and nothing scheduled) when `cap` already wait. */
  add(waiter: TurnWaiter): boolean {
    if (this.waiting.length >= this.cap) return false;
    this.waiting.push(waiter);
    const home = waiter.home;
    if (home !== undefined && !this.waitedFor.includes(home)) this.waitedFor.push(home);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
    return true;
  }

  /**
   * A reply from replica `iid` was read (its count of requests in flight is one lower). Waiters for it
   * look again in a microtask, once the read that brought the reply is done (every reply in it counted
   * off): they need not wait for the rest of the turn when their replica has room by then. Nothing to
   * do, and one comparison, while no one waits.
   */
  replied(iid: string): void {
    if (this.waiting.length === 0) return;
    if (!this.repliedFrom.includes(iid)) this.repliedFrom.push(iid);
    if (this.looking) return;
    this.looking = true;
    queueMicrotask(this.look);
  }

  private readonly look = (): void => {
    this.looking = false;
    const replicas = this.repliedFrom;
    this.repliedFrom = [];
    const waiting = this.waiting;
    for (let i = 0; i < waiting.length; i++) {
      const waiter = waiting[i];
      if (waiter.home === undefined || !replicas.includes(waiter.home)) continue;
      try {
        waiter.homeReplied?.();
      } catch (error) {
        this.onError(error);
      }
    }
  };

  /**
   * While requests wait for this turn's end, a connection's next write waits with them (FlushHolder):
   * the requests sent meanwhile and those the waiters send then leave in one write per connection,
   * rather than one write for each socket read of the turn and one more for the waiters (on loopback
   * a write is the dearest step of a small request). Nothing is held while no request waits.
   *
   * Except a write to a replica that a request of this turn waits for room at (`TurnWaiter.home`), from
   * the first such request to the end of the turn: that replica is over its limit, and holding its
   * requests back keeps it so for longer (it answers them later), passing on more keys. In
   * bench/affinity.ts, two runs of 6 interleaved Zipf passes: keys outside the 10 hottest at home 92.6%
   * and 93.0% on average, against 91.5% and 91.2% with every connection held; keyed throughput 1.02 and
   * 1.04 of round robin's against 1.04 and 1.08 (30 interleaved rounds each, within their spread).
   */
  hold(flush: () => void, peer: string): boolean {
    if (this.waiting.length === 0 || this.waitedFor.includes(peer)) return false;
    this.held.push(flush);
    return true;
  }

  /** Runs every waiter now (as when their owner closes), in the order they came, then the held writes. */
  readonly run = (): void => {
    this.scheduled = false;
    const batch = this.waiting;
    const held = this.held;
    if (batch.length === 0 && held.length === 0) return;
    this.waiting = this.spare;
    this.held = [];
    this.waitedFor.length = 0;
    for (let i = 0; i < batch.length; i++) {
      try {
        batch[i].endOfTurn();
      } catch (error) {
        this.onError(error);
      }
    }
    batch.length = 0;
    this.spare = batch;
    for (let i = 0; i < held.length; i++) {
      try {
        held[i]();
      } catch (error) {
        this.onError(error);
      }
    }
  };
}
