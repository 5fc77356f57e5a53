import { KableOptionsError } from '../node/errors.js';
import { DEFAULTS } from '../node/options.js';
import { CLIENT_DEFAULTS, rejectUnknownOptions, type KableClientOptions } from './kable.options.js';

export interface ResolvedClientSettings {
  pickTimeout: number;
  avoidFor: number;
  timeout: number;
  retries: number;
  maxWaiters: number;
}

function positive(name: string, value: unknown, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new KableOptionsError(
      `KableClientProxy option "${name}" must be ${allowZero ? 'a non-negative' : 'a positive'} integer; got ${String(value)}.`,
    );
  }
  return value;
}

/** The client's own options; the node's are checked by the node core. */
export function validateClientOptions(options: KableClientOptions): ResolvedClientSettings {
  if (options === null || typeof options !== 'object') {
    throw new KableOptionsError('KableClientProxy options must be an object, such as { target: "math" }.');
  }
  rejectUnknownOptions(options, 'KableClientProxy');
  if (options.target !== undefined && (typeof options.target !== 'string' || options.target === '')) {
    throw new KableOptionsError('KableClientProxy option "target" must be a service id such as "math".');
  }
  for (const name of ['maxFrameSize', 'maxPending'] as const) {
    if (options[name] !== undefined) positive(name, options[name]);
  }
  return {
    pickTimeout: positive('pickTimeout', options.pickTimeout ?? CLIENT_DEFAULTS.pickTimeout),
    // A refusing or unreachable node is skipped until its next advert, at most one node timeout.
    avoidFor:
      options.discovery?.nodeTimeout ??
      Math.round(
        (options.discovery?.advertiseInterval ?? DEFAULTS.advertiseInterval) * DEFAULTS.nodeTimeoutFactor,
      ),
    timeout: positive('timeout', options.timeout ?? CLIENT_DEFAULTS.timeout),
    retries: positive('retries', options.retries ?? CLIENT_DEFAULTS.retries, true),
    maxWaiters: positive('maxPickWaiters', options.maxPickWaiters ?? DEFAULTS.maxPickWaiters),
  };
}
