import { DEFAULT_BULK_THRESHOLD } from '../data-plane/peer-lanes.js';
import { CLIENT_IDLE_TIMEOUT } from '../data-plane/connection-deadlines.js';
import { LIVENESS_DEFAULTS, type LivenessOptions } from '../data-plane/peer-liveness.js';
import { KableOptionsError } from '../node/errors.js';
import { DEFAULTS } from '../node/options.js';
import { MAX_TIMER_MS, milliseconds } from '../node/validate-options.js';
import { CLIENT_DEFAULTS, rejectUnknownOptions, type KableClientOptions } from './kable.options.js';

export interface ResolvedClientSettings {
  pickTimeout: number;
  avoidFor: number;
  timeout: number;
  retries: number;
  maxWaiters: number;
  maxFrameSize: number | undefined;
  maxQueuedBytes: number | undefined;
  maxPending: number | undefined;
  bulkThreshold: number | false;
  liveness: LivenessOptions | false;
  idleTimeout: number;
  balance: 'round-robin' | 'least-latency';
  excludeUnhealthy: boolean;
  /** The `affinity` option's functions by route; a Map, so a route such as "constructor" finds nothing inherited. */
  affinity: Map<string, (data: any) => unknown> | undefined;
  affinityRecheck: boolean;
}

function livenessOf(liveness: KableClientOptions['liveness']): LivenessOptions | false {
  if (liveness === false) return false;
  if (liveness === undefined) return LIVENESS_DEFAULTS;
  if (liveness === null || typeof liveness !== 'object') {
    throw new KableOptionsError(
      'KableClientProxy option "liveness" must be false or { probeAfter, answerWithin } in ms, such as { probeAfter: 250, answerWithin: 500 }.',
    );
  }
  for (const key of Object.keys(liveness)) {
    if (key !== 'probeAfter' && key !== 'answerWithin') {
      throw new KableOptionsError(
        `KableClientProxy option "liveness" has no field "${key}"; it accepts probeAfter, answerWithin.`,
      );
    }
  }
  const resolved = { ...LIVENESS_DEFAULTS, ...liveness };
  for (const key of ['probeAfter', 'answerWithin'] as const) {
    const value = resolved[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 10 || value > MAX_TIMER_MS) {
      throw new KableOptionsError(
        `KableClientProxy option "liveness.${key}" must be a whole number of ms from 10 to ${MAX_TIMER_MS}; got ${String(value)}.`,
      );
    }
  }
  return resolved;
}

function balanceOf(balance: unknown): 'round-robin' | 'least-latency' {
  if (balance === undefined) return CLIENT_DEFAULTS.balance;
  if (balance === 'round-robin' || balance === 'least-latency') return balance;
  throw new KableOptionsError(
    `KableClientProxy option "balance" must be 'round-robin' (the default) or 'least-latency'; got ${JSON.stringify(balance) ?? String(balance)}.`,
  );
}

/** A boolean option whose default is true. */
function onByDefault(name: 'excludeUnhealthy' | 'affinityRecheck', value: unknown): boolean {
  if (value === undefined) return CLIENT_DEFAULTS[name];
  if (typeof value === 'boolean') return value;
  throw new KableOptionsError(
    `KableClientProxy option "${name}" must be true (the default) or false; got ${JSON.stringify(value) ?? String(value)}.`,
  );
}

function affinityOf(value: unknown): Map<string, (data: any) => unknown> | undefined {
  if (value === undefined) return undefined;
  const example = "such as { 'orders.get': (order) => order.customerId }";
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new KableOptionsError(
      `KableClientProxy option "affinity" must be an object of functions by pattern, ${example}; got ${String(value)}.`,
    );
  }
  const functions = new Map<string, (data: any) => unknown>();
  for (const [route, derive] of Object.entries(value)) {
    if (typeof derive !== 'function') {
      throw new KableOptionsError(
        `KableClientProxy option "affinity" must map each pattern to a function of the data that returns its key, ${example}; "${route}" is ${typeof derive}.`,
      );
    }
    functions.set(route, derive as (data: any) => unknown);
  }
  return functions.size === 0 ? undefined : functions;
}

const WHO = 'KableClientProxy option ';

function positive(name: string, value: unknown, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new KableOptionsError(
      `KableClientProxy option "${name}" must be ${allowZero ? 'a non-negative' : 'a positive'} integer; got ${String(value)}.`,
    );
  }
  return value;
}

/** Byte sizes: at least 1 KiB (a frame must hold a request), at most 4 GiB - 1 (the length prefix). */
export function byteSize(who: string, name: string, value: unknown, min = 1024): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 0xffffffff) {
    throw new KableOptionsError(
      `${who} option "${name}" must be a whole number of bytes from ${min} to 4294967295; got ${String(value)}.`,
    );
  }
  return value;
}

function bytes(name: string, value: unknown): number | undefined {
  return byteSize('KableClientProxy', name, value);
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
  if (options.maxPending !== undefined) positive('maxPending', options.maxPending);
  return {
    pickTimeout: milliseconds('pickTimeout', options.pickTimeout ?? CLIENT_DEFAULTS.pickTimeout, WHO),
    // A refusing or unreachable node is skipped until its next advert, at most one node timeout.
    avoidFor:
      options.discovery?.nodeTimeout ??
      Math.round(
        (options.discovery?.advertiseInterval ?? DEFAULTS.advertiseInterval) * DEFAULTS.nodeTimeoutFactor,
      ),
    timeout: milliseconds('timeout', options.timeout ?? CLIENT_DEFAULTS.timeout, WHO),
    retries: positive('retries', options.retries ?? CLIENT_DEFAULTS.retries, true),
    maxWaiters: positive('maxPickWaiters', options.maxPickWaiters ?? DEFAULTS.maxPickWaiters),
    maxFrameSize: bytes('maxFrameSize', options.maxFrameSize),
    maxQueuedBytes: bytes('maxQueuedBytes', options.maxQueuedBytes),
    maxPending: options.maxPending,
    bulkThreshold:
      options.bulkThreshold === false
        ? false
        : (bytes('bulkThreshold', options.bulkThreshold) ?? DEFAULT_BULK_THRESHOLD),
    liveness: livenessOf(options.liveness),
    idleTimeout: milliseconds('idleTimeout', options.idleTimeout ?? CLIENT_IDLE_TIMEOUT, WHO),
    balance: balanceOf(options.balance),
    excludeUnhealthy: onByDefault('excludeUnhealthy', options.excludeUnhealthy),
    affinity: affinityOf(options.affinity),
    affinityRecheck: onByDefault('affinityRecheck', options.affinityRecheck),
  };
}
