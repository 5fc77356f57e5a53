import type { NodeState } from './states.js';
import { brand } from './brand.js';

/** Every error the library raises carries a stable `code` that callers can switch on. */
export class KableError extends Error {
  static {
    brand(this, 'KableError');
  }

  constructor(
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
    readonly from: NodeState,
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
    readonly serviceId: string,
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
  code: string;
  message: string;
  count?: number;
}
