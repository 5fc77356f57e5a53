import { KableOptionsError } from './errors.js';
import { DEFAULTS, type KableOptions } from './options.js';
import type { OverloadOptions } from './overload-monitor.js';

/** Every option the node core accepts: the Nest classes pass exactly these on to it. */
export const NODE_OPTION_NAMES = [
  'replica',
  'host',
  'port',
  'meta',
  'namespace',
  'key',
  'keys',
  'discovery',
  'pickTimeout',
  'maxPickWaiters',
  'busy',
] as const satisfies ReadonlyArray<keyof KableOptions>;

const KNOWN_OPTIONS = new Set<string>(NODE_OPTION_NAMES);

/** The options a node runs with once defaults are applied (discovery details stay with the backend). */
export interface ResolvedNodeOptions {
  replica: boolean;
  host: string | undefined;
  port: number;
  meta: Record<string, unknown> | undefined;
  namespace: string;
  advertiseInterval: number;
  nodeTimeout: number;
  maxUpdatesPerSecond: number;
  pickTimeout: number;
  maxPickWaiters: number;
  busy: OverloadOptions | undefined;
}

export function validateId(id: unknown): string {
  if (typeof id !== 'string' || id.trim() === '') {
    throw new KableOptionsError('The node id must be a non-empty string, such as kable("math").');
  }
  if (id.length > 128)
    throw new KableOptionsError(`The node id "${id.slice(0, 20)}…" is over 128 characters.`);
  return id;
}

export function validateNodeOptions(options: KableOptions = {}): ResolvedNodeOptions {
  if (options === null || typeof options !== 'object')
    throw new KableOptionsError('Options must be an object.');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new KableOptionsError(
        `Unknown option "${key}"; the node accepts ${[...KNOWN_OPTIONS].join(', ')}.`,
      );
    }
  }
  const discovery = options.discovery ?? {};
  if (typeof discovery !== 'object') throw new KableOptionsError('"discovery" must be an object.');
  const advertiseInterval = milliseconds(
    'discovery.advertiseInterval',
    discovery.advertiseInterval ?? DEFAULTS.advertiseInterval,
  );
  const nodeTimeout = milliseconds(
    'discovery.nodeTimeout',
    discovery.nodeTimeout ?? Math.round(advertiseInterval * DEFAULTS.nodeTimeoutFactor),
  );
  if (nodeTimeout <= advertiseInterval) {
    throw new KableOptionsError(
      `discovery.nodeTimeout (${nodeTimeout} ms) must be longer than discovery.advertiseInterval (${advertiseInterval} ms), ` +
        'or every lost advert evicts a healthy peer; three intervals or more is safe.',
    );
  }
  if (options.replica !== undefined && typeof options.replica !== 'boolean') {
    throw new KableOptionsError('"replica" must be true or false.');
  }
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host === '')) {
    throw new KableOptionsError(
      '"host" must be a non-empty address other nodes can reach, such as "10.0.0.5".',
    );
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new KableOptionsError(
      `"port" must be an integer from 0 to 65535 (0 lets the system choose); got ${String(port)}.`,
    );
  }
  if (
    options.meta !== undefined &&
    (options.meta === null || typeof options.meta !== 'object' || Array.isArray(options.meta))
  ) {
    throw new KableOptionsError('"meta" must be a plain object.');
  }
  const namespace = options.namespace ?? DEFAULTS.namespace;
  if (typeof namespace !== 'string' || namespace === '' || namespace.length > 64) {
    throw new KableOptionsError('"namespace" must be a string of 1 to 64 characters.');
  }
  return {
    replica: options.replica ?? false,
    host: options.host,
    port,
    meta: options.meta,
    namespace,
    advertiseInterval,
    nodeTimeout,
    maxUpdatesPerSecond: positiveInteger(
      'discovery.maxUpdatesPerSecond',
      discovery.maxUpdatesPerSecond ?? DEFAULTS.maxUpdatesPerSecond,
    ),
    pickTimeout: milliseconds('pickTimeout', options.pickTimeout ?? DEFAULTS.pickTimeout),
    maxPickWaiters: positiveInteger('maxPickWaiters', options.maxPickWaiters ?? DEFAULTS.maxPickWaiters),
    busy: validateBusy(options.busy),
  };
}

export function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new KableOptionsError(`"${name}" must be a positive whole number; got ${String(value)}.`);
  }
  return value;
}

/**
 * Longest delay a Node timer honours: a longer one is clamped to 1 ms and fires at once, which would
 * turn "wait a month" into "give up now". Delays are refused above it rather than capped silently.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A positive whole number of milliseconds that a timer can wait for. */
export function milliseconds(name: string, value: unknown, who = ''): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new KableOptionsError(
      `${who}"${name}" must be a positive integer of milliseconds; got ${String(value)}.`,
    );
  }
  if (value > MAX_TIMER_MS) {
    throw new KableOptionsError(
      `${who}"${name}" must be at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest delay Node's timers ` +
        `keep (a longer one fires after 1 ms); got ${value}.`,
    );
  }
  return value;
}

function validateBusy(busy: KableOptions['busy']): OverloadOptions | undefined {
  if (busy === undefined) return undefined;
  if (busy === null || typeof busy !== 'object') {
    throw new KableOptionsError('"busy" must be an object such as { maxEventLoopDelayMs: 200 }.');
  }
  milliseconds('busy.maxEventLoopDelayMs', busy.maxEventLoopDelayMs);
  if (busy.checkInterval !== undefined) milliseconds('busy.checkInterval', busy.checkInterval);
  if (busy.recoverChecks !== undefined) positiveInteger('busy.recoverChecks', busy.recoverChecks);
  const ratio = busy.recoverRatio;
  if (ratio !== undefined && (typeof ratio !== 'number' || !(ratio > 0 && ratio < 1))) {
    throw new KableOptionsError(
      `"busy.recoverRatio" must be a number between 0 and 1 (default 0.5); got ${String(ratio)}.`,
    );
  }
  return busy;
}
