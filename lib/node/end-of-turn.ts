/** Something that waits for the end of the event loop's current turn (see `EndOfTurn`). */
export interface TurnWaiter {
  /** The turn's I/O has been read: act now. */
  endOfTurn(): void;
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
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
    return true;
  }

  /** Runs every waiter now (as when their owner closes), in the order they came. */
  readonly run = (): void => {
    this.scheduled = false;
    const batch = this.waiting;
    if (batch.length === 0) return;
    this.waiting = this.spare;
    for (let i = 0; i < batch.length; i++) {
      try {
        batch[i].endOfTurn();
      } catch (error) {
        this.onError(error);
      }
    }
    batch.length = 0;
    this.spare = batch;
  };
}
