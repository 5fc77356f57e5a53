import { Decoder } from '@msgpack/msgpack';

/**
 * MessagePack for the values frames carry most often, written and read by hand: integers of 32 bits or
 * less, binaries, and lists of at most 15 such integers (a `sum` over a few numbers). The bytes are the
 * ones the codec writes for the same value, so a frame written here reads back through the codec and the
 * other way round. Anything else goes through the codec (see next-frame.ts and request-frame.ts).
 */

/** An int list longer than this would need an array 16 header: left to the codec. */
const MAX_SMALL_LIST = 15;
const FIXARRAY = 0x90;
const NIL = 0xc0;
const TRUE = 0xc3;

/** A position in received bytes, moved on by the readers below (one object, not one per value). */
export interface Cursor {
  at: number;
}

/** Returned by the readers for bytes they cannot read by hand, or that do not fit where they must. */
export const NOT_READ = Symbol('not read');

/** Bytes of an unsigned integer, as MessagePack writes it (fixint, uint 8, 16 or 32). */
export function uintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : 5;
}

/** Writes an unsigned integer of 32 bits or less at `at`; returns where it ends. */
export function writeUint(target: Buffer, at: number, value: number): number {
  if (value < 0x80) {
    target[at] = value;
    return at + 1;
  }
  if (value < 0x100) {
    target[at] = 0xcc;
    target[at + 1] = value;
    return at + 2;
  }
  if (value < 0x10000) {
    target[at] = 0xcd;
    return target.writeUInt16BE(value, at + 1);
  }
  target[at] = 0xce;
  return target.writeUInt32BE(value, at + 1);
}

/** Bytes of a hand-written frame's head: fixarray header, type (a positive fixint), id. */
export function frameHeadSize(id: number): number {
  return 2 + uintSize(id);
}

/** Writes a hand-written frame's head, an array of `length` elements (at most 15), its type and its id. */
export function writeFrameHead(target: Buffer, at: number, length: number, type: number, id: number): number {
  target[at] = FIXARRAY | length;
  target[at + 1] = type;
  return writeUint(target, at + 2, id);
}

/** Bytes of an integer as written by `writeInt`, or -1 when the codec must encode it. */
function intSize(value: number): number {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0xffffffff || Object.is(value, -0))
    return -1;
  if (value >= 0) return uintSize(value);
  return value >= -0x20 ? 1 : value >= -0x80 ? 2 : value >= -0x8000 ? 3 : 5;
}

/** Bytes of a list of at most 15 integers as written by `writeSmallValue`, or -1. */
function intListSize(list: unknown[]): number {
  const length = list.length;
  if (length > MAX_SMALL_LIST) return -1;
  let size = 1;
  for (let i = 0; i < length; i++) {
    const item = list[i];
    const itemSize = typeof item === 'number' ? intSize(item) : -1;
    if (itemSize < 0) return -1;
    size += itemSize;
  }
  return size;
}

/** Bytes of `value` as written by `writeSmallValue`, or -1 when the codec must encode it. */
export function smallValueSize(value: unknown): number {
  if (typeof value === 'number') return intSize(value);
  if (value instanceof Uint8Array) {
    const length = value.byteLength;
    return (length < 0x100 ? 2 : length < 0x10000 ? 3 : 5) + length;
  }
  if (Array.isArray(value)) return intListSize(value);
  return -1;
}

function writeInt(target: Buffer, at: number, value: number): number {
  if (value >= 0) return writeUint(target, at, value);
  if (value >= -0x20) {
    target[at] = 0xe0 | (value + 0x20);
    return at + 1;
  }
  if (value >= -0x80) {
    target[at] = 0xd0;
    return target.writeInt8(value, at + 1);
  }
  if (value >= -0x8000) {
    target[at] = 0xd1;
    return target.writeInt16BE(value, at + 1);
  }
  target[at] = 0xd2;
  return target.writeInt32BE(value, at + 1);
}

/** Writes a value `smallValueSize` accepted at `at`; returns where it ends. */
export function writeSmallValue(target: Buffer, at: number, value: number | Uint8Array | number[]): number {
  if (typeof value === 'number') return writeInt(target, at, value);
  if (Array.isArray(value)) {
    target[at++] = FIXARRAY | value.length;
    for (let i = 0; i < value.length; i++) at = writeInt(target, at, value[i]);
    return at;
  }
  const length = value.byteLength;
  if (length < 0x100) {
    target[at] = 0xc4;
    target[at + 1] = length;
    at += 2;
  } else if (length < 0x10000) {
    target[at] = 0xc5;
    at = target.writeUInt16BE(length, at + 1);
  } else {
    target[at] = 0xc6;
    at = target.writeUInt32BE(length, at + 1);
  }
  target.set(value, at);
  return at + length;
}

/**
 * Reads an unsigned integer of 32 bits or less at `cursor.at`, ending at or before `end`, and moves the
 * cursor past it; -1 (cursor unmoved) for any other value or one that runs past `end`.
 */
export function readUint(bytes: Buffer, cursor: Cursor, end: number): number {
  const at = cursor.at;
  if (at >= end) return -1;
  const tag = bytes[at];
  if (tag < 0x80) {
    cursor.at = at + 1;
    return tag;
  }
  const size = tag === 0xcc ? 2 : tag === 0xcd ? 3 : tag === 0xce ? 5 : 0;
  if (size === 0 || at + size > end) return -1;
  cursor.at = at + size;
  return size === 2 ? bytes[at + 1] : size === 3 ? bytes.readUInt16BE(at + 1) : bytes.readUInt32BE(at + 1);
}

/** `readUint`, and negative integers of 32 bits or less too; NOT_READ for anything else. */
function readInt(bytes: Buffer, cursor: Cursor, end: number): number | typeof NOT_READ {
  const at = cursor.at;
  if (at >= end) return NOT_READ;
  const tag = bytes[at];
  if (tag >= 0xe0) {
    cursor.at = at + 1;
    return tag - 0x100;
  }
  if (tag < 0xd0 || tag > 0xd2) {
    const value = readUint(bytes, cursor, end);
    return value < 0 ? NOT_READ : value;
  }
  const size = tag === 0xd0 ? 2 : tag === 0xd1 ? 3 : 5;
  if (at + size > end) return NOT_READ;
  cursor.at = at + size;
  return size === 2
    ? bytes.readInt8(at + 1)
    : size === 3
      ? bytes.readInt16BE(at + 1)
      : bytes.readInt32BE(at + 1);
}

/**
 * Reads, by hand, the value at `cursor.at` if it is one `writeSmallValue` could have written (an integer,
 * a binary, a list of integers) or nil, true or false, and it ends at or before `end`; moves the cursor
 * past it. NOT_READ, the cursor wherever, otherwise. A binary is a view of `bytes`, as the codec gives it.
 */
export function readSmallValue(bytes: Buffer, cursor: Cursor, end: number): unknown {
  const at = cursor.at;
  if (at >= end) return NOT_READ;
  const tag = bytes[at];
  if (tag >= NIL && tag <= TRUE && tag !== 0xc1) {
    cursor.at = at + 1;
    return tag === NIL ? null : tag === TRUE;
  }
  if (tag >= 0xc4 && tag <= 0xc6) {
    const headerSize = tag === 0xc4 ? 2 : tag === 0xc5 ? 3 : 5;
    if (at + headerSize > end) return NOT_READ;
    const length =
      tag === 0xc4 ? bytes[at + 1] : tag === 0xc5 ? bytes.readUInt16BE(at + 1) : bytes.readUInt32BE(at + 1);
    const valueEnd = at + headerSize + length;
    if (valueEnd > end) return NOT_READ;
    cursor.at = valueEnd;
    return bytes.subarray(at + headerSize, valueEnd);
  }
  if (tag < FIXARRAY || tag > (FIXARRAY | MAX_SMALL_LIST)) return readInt(bytes, cursor, end);
  const length = tag & MAX_SMALL_LIST;
  const list: number[] = new Array<number>(length);
  cursor.at = at + 1;
  for (let i = 0; i < length; i++) {
    const item = readInt(bytes, cursor, end);
    if (item === NOT_READ) return NOT_READ;
    list[i] = item;
  }
  return list;
}

/** For values not read by hand (strings, objects); decoding never calls out, so never re-enters it. */
const valueDecoder = new Decoder();
const cursor: Cursor = { at: 0 };

/**
 * Input a decoder may keep after decoding it: what one socket read brings (Node's reads are at most
 * 64 KiB). Larger input is a large frame's own buffer (see ASSEMBLE_FROM in frame-decoder.ts).
 */
const KEEP_INPUT_UP_TO = 64 * 1024;
const NO_INPUT = new Uint8Array(0);

/** The codec's members `decodeTwo` uses: not in its typings, so checked before use (see below). */
interface DecoderInternals {
  reinitializeState(): void;
  setBuffer(buffer: Uint8Array): void;
  doDecodeSync(): unknown;
  pos: number;
}

const internals = valueDecoder as unknown as DecoderInternals;

/**
 * Makes `decoder` let go of `input` if that is a large frame's memory. The codec keeps a view of what it
 * decoded last until its next decode, so a connection's decoder (or this module's, shared by all) kept the
 * last large frame alive after its handler was done with it, until another frame went through the codec:
 * an upload of 64 MiB stayed in memory on a connection that then sent only small requests. Any view of
 * `input` keeps its whole memory, so the memory's size is what counts, not the decoded range's.
 */
export function forgetLargeInput(decoder: Decoder, input: Uint8Array): void {
  if (input.buffer.byteLength <= KEEP_INPUT_UP_TO) return;
  const setBuffer = (decoder as unknown as Partial<DecoderInternals>).setBuffer;
  // Without the member (a release that renamed it) the frame stays kept until the next decode, as before.
  if (typeof setBuffer === 'function') setBuffer.call(decoder, NO_INPUT);
}

/**
 * True when the installed @msgpack/msgpack has the members `decodeTwo` uses; a release that renamed
 * them leaves a value followed by another (a request's data before its metadata, a last stream value
 * before its `true`) to the codec's path (slower, same outcome), and a test fails.
 */
export const decodesInPlace =
  typeof internals.reinitializeState === 'function' &&
  typeof internals.setBuffer === 'function' &&
  typeof internals.doDecodeSync === 'function';

/**
 * The two values filling `bytes[start, end)` exactly, into `into`, decoded by the codec in one pass over
 * the range (as `decode` reads one value, then the next from where it stopped); false if the range holds
 * anything else. One pass, not two decodes: each call into the codec costs about as much as a small value.
 */
function decodeTwo(bytes: Buffer, start: number, end: number, into: unknown[]): boolean {
  if (!decodesInPlace) return false;
  try {
    internals.reinitializeState();
    internals.setBuffer(bytes.subarray(start, end));
    into[0] = internals.doDecodeSync();
    into[1] = internals.doDecodeSync();
    return internals.pos === end - start;
  } catch {
    return false;
  } finally {
    forgetLargeInput(valueDecoder, bytes);
  }
}

/**
 * Whether the codec, reading the values in `bytes[start, end)`, may read on past `end`: its UTF-8 reader
 * takes a sequence whose lead byte is among the last three bytes of a string from the bytes after the
 * string, and a string ending at `end` ends with those bytes. False when no byte there leads a sequence
 * longer than what is left (then the values read the same with or without the bytes after `end`).
 */
export function mayReadOn(bytes: Buffer, start: number, end: number): boolean {
  for (let at = Math.max(start, end - 3); at < end; at++) {
    const byte = bytes[at];
    const length = (byte & 0xe0) === 0xc0 ? 2 : (byte & 0xf0) === 0xe0 ? 3 : (byte & 0xf8) === 0xf0 ? 4 : 1;
    if (at + length > end) return true;
  }
  return false;
}

/**
 * The one MessagePack value that fills `bytes[start, end)` exactly, or NOT_READ: as the codec reads it
 * there. `end` must be where the codec's own input ends: its UTF-8 reader takes a sequence cut short at
 * the end of a string from the bytes after it, up to the end of its input.
 */
export function readOneValue(bytes: Buffer, start: number, end: number): unknown {
  if (start >= end) return NOT_READ;
  cursor.at = start;
  const value = readSmallValue(bytes, cursor, end);
  if (value !== NOT_READ) return cursor.at === end ? value : NOT_READ;
  try {
    // Throws unless exactly one value fills the range.
    return valueDecoder.decode(bytes.subarray(start, end));
  } catch {
    return NOT_READ;
  } finally {
    forgetLargeInput(valueDecoder, bytes);
  }
}

/**
 * The two MessagePack values that fill `bytes[start, end)` exactly, into `into` (first, second), as the
 * codec reads them there (`end` as for readOneValue); false if the range holds anything else.
 */
export function readTwoValues(bytes: Buffer, start: number, end: number, into: unknown[]): boolean {
  if (start >= end) return false;
  cursor.at = start;
  const first = readSmallValue(bytes, cursor, end);
  // Both by the codec, the first with the bytes after it in view, as it reads them in the whole frame.
  if (first === NOT_READ) return decodeTwo(bytes, start, end, into);
  const second = readOneValue(bytes, cursor.at, end);
  if (second === NOT_READ) return false;
  into[0] = first;
  into[1] = second;
  return true;
}
