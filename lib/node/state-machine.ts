import { KableStateError } from './errors.js';
import { canTransition, type NodeState } from './states.js';

/** Where a node is now, why, and since when (milliseconds since the epoch). */
export interface NodeStatus {
  /** The current state. */
  readonly state: NodeState;
  /** Why, as given to stop(), doing() or start(). */
  readonly reason?: string;
  /** When the node entered the state, milliseconds since the epoch. */
  readonly since: number;
}

/** Holds one node's state; every change goes through the transition table. */
export class StateMachine {
  private status: NodeStatus;

  constructor(initial: NodeState = 'DOWN', now: () => number = Date.now) {
    this.now = now;
    this.status = { state: initial, since: now() };
  }

  private readonly now: () => number;

  get current(): NodeStatus {
    return this.status;
  }

  /** Moves to `to`; throws KableStateError when the table forbids it. Returns the previous status. */
  to(to: NodeState, reason?: string): NodeStatus {
    const previous = this.status;
    if (!canTransition(previous.state, to)) throw new KableStateError(previous.state, to);
    this.status =
      reason === undefined ? { state: to, since: this.now() } : { state: to, reason, since: this.now() };
    return previous;
  }
}
