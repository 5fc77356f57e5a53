import type { Encoder } from '@msgpack/msgpack';
import { FrameType, isMetadata, isPattern, type Metadata } from './frames.js';
import {
  frameHeadSize,
  NOT_READ,
  readOneValue,
  readTwoValues,
  readUint,
  writeFrameHead,
  type Cursor,
} from './small-values.js';

/**
 * REQUEST frames, `[1, id, pattern, data]` and `[1, id, pattern, data, metadata]`, one per call: written
 * and read here by hand around their data and metadata, as next-frame.ts does for NEXT frames. A route's
 * pattern is the same few bytes call after call, so each side keeps it ready: its encoding (writer) and
 * its decoded string (reader). Small data (see small-values.ts) needs no codec at all. The bytes are the
 * codec's for the same array; a frame the reader is not sure of is left to the codec.
 */

const FIXARRAY_4 = 0x94;
const FIXARRAY_5 = 0x95;
/** Patterns kept per side: a service has a few routes; a flood of made-up ones must not grow memory. */
const CACHED_PATTERNS = 1024;
/** Longer patterns (bytes, str header included) are encoded or decoded each time, not kept. */
const CACHED_PATTERN_BYTES = 256;

const encodedPatterns = new Map<string, Uint8Array>();

/** `pattern` as the codec writes it (str header, then UTF-8): kept for the next call on the same route. */
export function encodedPattern(pattern: string, encoder: Encoder): Uint8Array {
  let bytes = encodedPatterns.get(pattern);
  if (bytes !== undefined) return bytes;
  // The codec's own bytes (a lone surrogate is written as it writes it), copied out of its buffer.
  bytes = encoder.encode(pattern);
  if (bytes.length <= CACHED_PATTERN_BYTES && encodedPatterns.size < CACHED_PATTERNS)
    encodedPatterns.set(pattern, bytes);
  return bytes;
}

/** Bytes of a REQUEST frame's body before its data: array header, type, id and pattern. */
export function requestHeadSize(id: number, pattern: Uint8Array): number {
  return frameHeadSize(id) + pattern.length;
}

/** Writes a REQUEST frame's array header, type, id and pattern at `at`; returns where the data goes. */
export function writeRequestHead(
  target: Buffer,
  at: number,
  id: number,
  pattern: Uint8Array,
  withMetadata: boolean,
): number {
  at = writeFrameHead(target, at, withMetadata ? 5 : 4, FrameType.REQUEST, id);
  target.set(pattern, at);
  return at + pattern.length;
}

export type RequestHandler = (
  id: number,
  pattern: string,
  data: unknown,
  metadata: Metadata | undefined,
) => void;

interface DecodedPattern {
  bytes: Buffer;
  text: string;
}

/** Decoded patterns by a hash of their bytes (str header included); the bytes are compared on a hit. */
const decodedPatterns = new Map<number, DecodedPattern>();
const cursor: Cursor = { at: 0 };
const pair: unknown[] = [undefined, undefined];

/**
 * Reads the frame body `bytes[start, end)` if it is a well-formed REQUEST frame and hands it to
 * `onRequest`, checked as parseFrame checks it. Returns false, having called nothing, for any other frame
 * (or one it cannot be sure of): the caller decodes that one as usual, so the outcome is always the
 * codec's. Never reads past `end`.
 */
export function readRequestFrame(
  bytes: Buffer,
  start: number,
  end: number,
  onRequest: RequestHandler,
): boolean {
  if (end - start < 5) return false;
  const header = bytes[start];
  if ((header !== FIXARRAY_4 && header !== FIXARRAY_5) || bytes[start + 1] !== FrameType.REQUEST)
    return false;
  cursor.at = start + 2;
  const id = readUint(bytes, cursor, end);
  if (id < 0) return false;
  const pattern = readPattern(bytes, cursor, end);
  if (pattern === undefined) return false;
  const dataStart = cursor.at;
  if (header === FIXARRAY_4) {
    const data = readOneValue(bytes, dataStart, end);
    if (data === NOT_READ) return false;
    onRequest(id, pattern, data, undefined);
    return true;
  }
  if (!readTwoValues(bytes, dataStart, end, pair)) return false;
  const [data, metadata] = pair;
  pair[0] = pair[1] = undefined;
  if (!isMetadata(metadata)) return false;
  onRequest(id, pattern, data, metadata ?? undefined);
  return true;
}

/** The pattern at `cursor.at` (a string parseFrame accepts), moving the cursor past it; else undefined. */
function readPattern(bytes: Buffer, cursor: Cursor, end: number): string | undefined {
  const at = cursor.at;
  const tag = bytes[at];
  let headerSize: number;
  if (tag >= 0xa0 && tag <= 0xbf) headerSize = 1;
  else if (tag === 0xd9) headerSize = 2;
  else if (tag === 0xda) headerSize = 3;
  else if (tag === 0xdb) headerSize = 5;
  else return undefined;
  if (at + headerSize > end) return undefined;
  const length =
    headerSize === 1
      ? tag & 0x1f
      : headerSize === 2
        ? bytes[at + 1]
        : headerSize === 3
          ? bytes.readUInt16BE(at + 1)
          : bytes.readUInt32BE(at + 1);
  const patternEnd = at + headerSize + length;
  if (patternEnd > end) return undefined;
  cursor.at = patternEnd;
  if (patternEnd - at > CACHED_PATTERN_BYTES) return decodePattern(bytes, at, at + headerSize, patternEnd);
  const hash = hashOf(bytes, at, patternEnd);
  const known = decodedPatterns.get(hash);
  if (known !== undefined && sameBytes(known.bytes, bytes, at, patternEnd)) return known.text;
  const text = decodePattern(bytes, at, at + headerSize, patternEnd);
  // A different pattern with the same hash is decoded each time; the first one keeps its place.
  if (text !== undefined && known === undefined) {
    // Start over rather than stop caching: made-up patterns cannot keep a service's own ones out.
    if (decodedPatterns.size >= CACHED_PATTERNS) decodedPatterns.clear();
    decodedPatterns.set(hash, { bytes: Buffer.from(bytes.subarray(at, patternEnd)), text });
  }
  return text;
}

/**
 * The pattern `bytes[start, end)` (str header, then text from `textStart`) decoded by the codec itself, if
 * its text is well-formed UTF-8: the codec reads a sequence cut short at a string's end with the bytes
 * after it (the frame's data), so such a pattern read apart would not be the codec's. Re-encoding tells.
 */
function decodePattern(bytes: Buffer, start: number, textStart: number, end: number): string | undefined {
  const text = readOneValue(bytes, start, end);
  if (!isPattern(text)) return undefined;
  const utf8 = Buffer.from(text, 'utf8');
  return utf8.length === end - textStart && utf8.compare(bytes, textStart, end) === 0 ? text : undefined;
}

/** How many patterns each side keeps now (both capped at 1,024): for tests. */
export function keptPatterns(): { encoded: number; decoded: number } {
  return { encoded: encodedPatterns.size, decoded: decodedPatterns.size };
}

/** Whether `kept` holds exactly `bytes[start, end)`: a loop, cheaper than a call into Node for a few bytes. */
function sameBytes(kept: Buffer, bytes: Buffer, start: number, end: number): boolean {
  if (kept.length !== end - start) return false;
  for (let i = start; i < end; i++) if (kept[i - start] !== bytes[i]) return false;
  return true;
}

/** FNV-1a (32 bits) of `bytes[start, end)`. */
function hashOf(bytes: Buffer, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return hash;
}
