import { Decoder } from '@msgpack/msgpack';
import { FrameType } from './frames.js';

/**
 * NEXT frames, `[3, id, value]` and `[3, id, value, true]`, are what a stream sends once per value and
 * every reply ends with: they are written and read here by hand around the value, so the codec does
 * not build or walk an array per value, and an integer or binary value needs no codec at all (a binary
 * is read as a view into the received bytes, as the codec would give it). The bytes are the ones the
 * codec writes for the same array, so each side may take either path; anything else, or any frame that
 * does not fit these shapes exactly, goes through the codec.
 */

const FIXARRAY_3 = 0x93;
const FIXARRAY_4 = 0x94;
const TRUE = 0xc3;

/** Bytes of an unsigned id, as MessagePack writes it (fixint, uint 8, 16 or 32). */
export function uintSize(id: number): number {
  return id < 0x80 ? 1 : id < 0x100 ? 2 : id < 0x10000 ? 3 : 5;
}

/** Bytes of a NEXT frame's body around its value: array header, type, id, and `true` if last. */
export function nextFrameOverhead(id: number, last: boolean): number {
  return 2 + uintSize(id) + (last ? 1 : 0);
}

/** Writes a NEXT frame's array header, type and id at `at`; returns where the value goes. */
export function writeNextHead(target: Buffer, at: number, id: number, last: boolean): number {
  target[at++] = last ? FIXARRAY_4 : FIXARRAY_3;
  target[at++] = FrameType.NEXT;
  return writeUint(target, at, id);
}

function writeUint(target: Buffer, at: number, value: number): number {
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

/** Bytes of `value` as written by `writeSmallValue`, or -1 when the codec must encode it. */
export function smallValueSize(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < -0x80000000 || value > 0xffffffff || Object.is(value, -0))
      return -1;
    if (value >= 0) return uintSize(value);
    return value >= -0x20 ? 1 : value >= -0x80 ? 2 : value >= -0x8000 ? 3 : 5;
  }
  if (value instanceof Uint8Array) {
    const length = value.byteLength;
    return (length < 0x100 ? 2 : length < 0x10000 ? 3 : 5) + length;
  }
  return -1;
}

/** Writes a value `smallValueSize` accepted (an integer of 32 bits or less, or a binary) at `at`. */
export function writeSmallValue(target: Buffer, at: number, value: number | Uint8Array): number {
  if (typeof value === 'number') {
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

export type NextHandler = (id: number, value: unknown, last: boolean) => void;

/** For values that are neither integers nor binaries (strings, objects); decoding never re-enters it. */
const valueDecoder = new Decoder();

/**
 * Reads the frame body `bytes[start, end)` if it is a well-formed NEXT frame and hands it to `onNext`.
 * Returns false, having called nothing, for any other frame (or a NEXT frame it cannot be sure of): the
 * caller decodes that one as usual, so the outcome is always the codec's.
 */
export function readNextFrame(bytes: Buffer, start: number, end: number, onNext: NextHandler): boolean {
  if (end - start < 4) return false;
  const header = bytes[start];
  if ((header !== FIXARRAY_3 && header !== FIXARRAY_4) || bytes[start + 1] !== FrameType.NEXT) return false;
  const last = header === FIXARRAY_4;
  // [3, id, value, true]: the value ends just before the final `true`, a single byte.
  if (last && bytes[end - 1] !== TRUE) return false;
  const valueEnd = last ? end - 1 : end;
  let at = start + 2;
  const tag = bytes[at];
  let id: number;
  if (tag < 0x80) {
    id = tag;
    at += 1;
  } else if (tag === 0xcc) {
    id = bytes[at + 1];
    at += 2;
  } else if (tag === 0xcd) {
    id = bytes.readUInt16BE(at + 1);
    at += 3;
  } else if (tag === 0xce) {
    id = bytes.readUInt32BE(at + 1);
    at += 5;
  } else return false;
  if (at >= valueEnd) return false;
  const value = readValue(bytes, at, valueEnd);
  if (value === NOT_READ) return false;
  onNext(id, value, last);
  return true;
}

const NOT_READ = Symbol('not read');

/** The one MessagePack value that fills `bytes[start, end)` exactly, or NOT_READ. */
function readValue(bytes: Buffer, start: number, end: number): unknown {
  const tag = bytes[start];
  const size = end - start;
  if (tag < 0x80 || tag >= 0xe0) {
    if (size === 1) return tag < 0x80 ? tag : tag - 0x100;
  } else if (tag >= 0xc4 && tag <= 0xc6) {
    const headerSize = tag === 0xc4 ? 2 : tag === 0xc5 ? 3 : 5;
    if (size >= headerSize) {
      const length =
        tag === 0xc4
          ? bytes[start + 1]
          : tag === 0xc5
            ? bytes.readUInt16BE(start + 1)
            : bytes.readUInt32BE(start + 1);
      if (headerSize + length === size) return bytes.subarray(start + headerSize, end);
    }
    return NOT_READ;
  } else if (tag === 0xcc && size === 2) return bytes[start + 1];
  else if (tag === 0xcd && size === 3) return bytes.readUInt16BE(start + 1);
  else if (tag === 0xce && size === 5) return bytes.readUInt32BE(start + 1);
  else if (tag === 0xd0 && size === 2) return bytes.readInt8(start + 1);
  else if (tag === 0xd1 && size === 3) return bytes.readInt16BE(start + 1);
  else if (tag === 0xd2 && size === 5) return bytes.readInt32BE(start + 1);
  try {
    // Throws unless exactly one value fills the range.
    return valueDecoder.decode(bytes.subarray(start, end));
  } catch {
    return NOT_READ;
  }
}
