import type { NodeState } from './states.js';
import { brand } from './brand.js';

/** Every error the library raises carries a stable `code` that callers can switch on. */
export class KableError extends Error {
  static {
    brand(this, 'KableError');
  }

  constructor(
    /** Stable code to switch on, such as KABLE_TIMEOUT or KABLE_NO_NODE. */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KableError';
  }
}

/** A forbidden state transition: a programming error, thrown at the call. */
export class KableStateError extends KableError {
  static {
    brand(this, 'KableStateError');
  }

  constructor(
    /** The state the node was in. */
    readonly from: NodeState,
    /** The state it was asked to move to. */
    readonly to: NodeState,
  ) {
    super('KABLE_STATE', `Cannot move a node from ${from} to ${to}.`);
    this.name = 'KableStateError';
  }
}

/** pick() waited its whole timeout and no RUNNING node with that id appeared. */
export class KablePickTimeoutError extends KableError {
  static {
    brand(this, 'KablePickTimeoutError');
  }

  constructor(
    /** The service id that was waited for. */
    readonly serviceId: string,
    /** How long pick() waited, milliseconds. */
    readonly timeout: number,
  ) {
    super('KABLE_PICK_TIMEOUT', `No RUNNING node "${serviceId}" appeared within ${timeout} ms.`);
    this.name = 'KablePickTimeoutError';
  }
}

/** Options that cannot work: thrown at construction, naming the option to change. */
export class KableOptionsError extends KableError {
  static {
    brand(this, 'KableOptionsError');
  }

  constructor(message: string) {
    super('KABLE_OPTIONS', message);
    this.name = 'KableOptionsError';
  }
}

/** A non-fatal condition worth telling the user about (dropped datagrams, refused connections). */
export interface KableWarning {
  /** Stable code of the condition, such as `garbage` or `KABLE_LISTENER_ERROR`. */
  code: string;
  /** What happened and what to do about it. */
  message: string;
  /** How many times it happened since the last warning of this code (warnings are rate-limited). */
  count?: number;
}
