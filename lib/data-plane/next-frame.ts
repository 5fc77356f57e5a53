import { FrameType } from './frames.js';
import {
  frameHeadSize,
  mayReadOn,
  NOT_READ,
  readOneValue,
  readTwoValues,
  readUint,
  writeFrameHead,
  type Cursor,
} from './small-values.js';

/**
 * NEXT frames, `[3, id, value]` and `[3, id, value, true]`, are what a stream sends once per value and
 * every reply ends with: they are written and read here by hand around the value, so the codec does
 * not build or walk an array per value, and a small value (see small-values.ts) needs no codec at all (a
 * binary is read as a view into the received bytes, as the codec would give it). The bytes are the ones
 * the codec writes for the same array, so each side may take either path; anything else, or any frame
 * that does not fit these shapes exactly, goes through the codec.
 */

const FIXARRAY_3 = 0x93;
const FIXARRAY_4 = 0x94;
const TRUE = 0xc3;

/** Bytes of a NEXT frame's body around its value: array header, type, id, and `true` if last. */
export function nextFrameOverhead(id: number, last: boolean): number {
  return frameHeadSize(id) + (last ? 1 : 0);
}

/** Writes a NEXT frame's array header, type and id at `at`; returns where the value goes. */
export function writeNextHead(target: Buffer, at: number, id: number, last: boolean): number {
  return writeFrameHead(target, at, last ? 4 : 3, FrameType.NEXT, id);
}

export type NextHandler = (id: number, value: unknown, last: boolean) => void;

const cursor: Cursor = { at: 0 };
const pair: unknown[] = [undefined, undefined];

/**
 * Reads the frame body `bytes[start, end)` if it is a well-formed NEXT frame and hands it to `onNext`.
 * Returns false, having called nothing, for any other frame (or a NEXT frame it cannot be sure of): the
 * caller decodes that one as usual, so the outcome is always the codec's. Never reads past `end`.
 */
export function readNextFrame(bytes: Buffer, start: number, end: number, onNext: NextHandler): boolean {
  if (end - start < 4) return false;
  const header = bytes[start];
  if ((header !== FIXARRAY_3 && header !== FIXARRAY_4) || bytes[start + 1] !== FrameType.NEXT) return false;
  const last = header === FIXARRAY_4;
  // [3, id, value, true]: the frame ends with the `true`, a single byte.
  if (last && bytes[end - 1] !== TRUE) return false;
  cursor.at = start + 2;
  const id = readUint(bytes, cursor, last ? end - 1 : end);
  if (id < 0) return false;
  const at = cursor.at;
  let value: unknown;
  if (!last) value = readOneValue(bytes, at, end);
  else if (!mayReadOn(bytes, at, end - 1)) value = readOneValue(bytes, at, end - 1);
  // The codec would read on into the `true`: the value is read with it in view, as the codec reads it.
  else if (readTwoValues(bytes, at, end, pair) && pair[1] === true) {
    value = pair[0];
    pair[0] = undefined;
  } else return false;
  if (value === NOT_READ) return false;
  onNext(id, value, last);
  return true;
}
