import { Decoder, Encoder } from '@msgpack/msgpack';
import type { Advert, AdvertEvent } from '../node/advert.js';
import { KableOptionsError } from '../node/errors.js';
import {
  PROTOCOL_VERSION,
  SENDS_TEST_EXTENSIONS,
  versionFromArray,
  versionToArray,
} from '../node/protocol-version.js';
import { MAX_PROBED } from '../node/silence-probe.js';
import { NODE_STATES, type NodeState } from '../node/states.js';

/** Largest datagram sent or accepted: stays under every LAN's MTU, so adverts never fragment. */
export const MAX_DATAGRAM = 1200;

const EVENTS: readonly AdvertEvent[] = ['advertisement', 'update', 'unregister'];
const MAX_STRING = 256;

const encoder = new Encoder();
const decoder = new Decoder({
  maxStrLength: MAX_DATAGRAM,
  maxBinLength: MAX_DATAGRAM,
  maxArrayLength: 64,
  maxMapLength: 64,
});

/** Fields every advert has; the probe list and the protocol version follow (see docs/protocol.md). */
const BASE_FIELDS = 16;
/** Fields this version writes: the base ones, the probe list (or null) and the protocol version. */
export const ADVERT_FIELDS = 18;

/**
 * An advert as a positional array: field names would cost a third of the datagram. Sixteen fields, then
 * the probe list (null when the advert probes no silent peer) and the protocol version `[major, minor]`.
 * A later minor version may only append fields: a reader ignores (and counts) those it does not know.
 */
export function advertToArray(advert: Advert): unknown[] {
  const fields: unknown[] = [
    EVENTS.indexOf(advert.event),
    advert.id,
    advert.iid,
    advert.replica,
    advert.host,
    advert.port,
    advert.hostname,
    advert.pid,
    advert.index,
    advert.startedAt,
    NODE_STATES.indexOf(advert.state),
    advert.reason ?? null,
    advert.since,
    advert.seq,
    advert.patterns,
    advert.meta ?? null,
  ];
  fields.push(advert.probe ?? null, versionToArray(advert.protocol ?? PROTOCOL_VERSION));
  if (SENDS_TEST_EXTENSIONS) fields.push('a field of a later minor version');
  return fields;
}

function isProbeList(value: unknown): value is number[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.length <= MAX_PROBED &&
    value.every((index) => isWhole(index, 0, Number.MAX_SAFE_INTEGER))
  );
}

function isString(value: unknown, max = MAX_STRING): value is string {
  return typeof value === 'string' && value.length <= max;
}

function isWhole(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;
}

/**
 * Checks every known field of a decoded advert; undefined when anything is off. Sixteen or seventeen
 * fields is an advert from before versions were advertised (no protocol version: the current major is
 * assumed); fields past the eighteenth come from a later minor version and are ignored, counted in
 * `unknownFields`.
 */
export function advertFromArray(value: unknown): Advert | undefined {
  if (!Array.isArray(value) || value.length < BASE_FIELDS) return undefined;
  const [
    event,
    id,
    iid,
    replica,
    host,
    port,
    hostname,
    pid,
    index,
    startedAt,
    state,
    reason,
    since,
    seq,
    patterns,
    meta,
    probe,
    protocol,
  ] = value as unknown[];
  if (!isWhole(event, 0, EVENTS.length - 1) || !isWhole(state, 0, NODE_STATES.length - 1)) return undefined;
  if (!isString(id) || id === '' || !isString(iid) || iid === '' || typeof replica !== 'boolean')
    return undefined;
  if (!isString(host) || !isWhole(port, 0, 65535) || !isString(hostname) || !isWhole(pid, 0, 2 ** 32))
    return undefined;
  if (!isWhole(index, 0, Number.MAX_SAFE_INTEGER) || !isWhole(startedAt, 0, Number.MAX_SAFE_INTEGER))
    return undefined;
  if (!isWhole(since, 0, Number.MAX_SAFE_INTEGER) || !isWhole(seq, 0, Number.MAX_SAFE_INTEGER))
    return undefined;
  if (reason !== null && !isString(reason, 512)) return undefined;
  if (!isString(patterns, 64)) return undefined;
  if (meta !== null && (typeof meta !== 'object' || Array.isArray(meta))) return undefined;
  const probing = value.length > BASE_FIELDS && (value.length === BASE_FIELDS + 1 || probe !== null);
  if (probing && !isProbeList(probe)) return undefined;
  const version = value.length >= ADVERT_FIELDS ? versionFromArray(protocol) : undefined;
  if (value.length >= ADVERT_FIELDS && version === undefined) return undefined;
  const advert: Advert = {
    event: EVENTS[event],
    id,
    iid,
    replica,
    host,
    port,
    hostname,
    pid,
    index,
    startedAt,
    state: NODE_STATES[state] as NodeState,
    since,
    seq,
    patterns,
  };
  if (reason !== null) advert.reason = reason;
  if (meta !== null) advert.meta = meta as Record<string, unknown>;
  if (probing) advert.probe = probe as number[];
  if (version !== undefined) advert.protocol = version;
  if (value.length > ADVERT_FIELDS) advert.unknownFields = value.length - ADVERT_FIELDS;
  return advert;
}

export function encodeValue(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/** Decodes MessagePack; throws on anything that is not exactly one well-formed value. */
export function decodeValue(bytes: Uint8Array): unknown {
  return decoder.decode(bytes);
}

/** Refuses, at up(), an advert that could never be sent (too big for one datagram). */
export function assertAdvertFits(encoded: Uint8Array): void {
  const size = encoded.length;
  if (size > MAX_DATAGRAM) {
    throw new KableOptionsError(
      `This node's advert would be ${size} bytes, ${size - MAX_DATAGRAM} over the ${MAX_DATAGRAM}-byte limit: make "meta" smaller.`,
    );
  }
}
