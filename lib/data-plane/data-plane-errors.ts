import { KableError } from '../node/errors.js';
import { brand } from '../node/brand.js';

/**
 * A data-plane failure. `retryable` is true only when the request certainly never reached a handler
 * (refused, or never written to a socket), so sending it to another replica cannot run it twice.
 * KABLE_UNENCODABLE: the request's or event's data cannot be encoded as MessagePack (a bigint, a
 * circular object...); it was not sent, and is not retried (it would fail the same everywhere).
 */
export class KableDataPlaneError extends KableError {
  static {
    brand(this, 'KableDataPlaneError');
  }

  constructor(
    code:
      | 'KABLE_PEER_UNREACHABLE'
      | 'KABLE_PEER_LOST'
      | 'KABLE_REFUSED'
      | 'KABLE_BACKPRESSURE'
      | 'KABLE_TIMEOUT'
      | 'KABLE_PAYLOAD_TOO_LARGE'
      | 'KABLE_UNENCODABLE',
    message: string,
    /** True when the request certainly never reached a handler: another replica may take it. */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'KableDataPlaneError';
  }
}
