import { Encoder } from '@msgpack/msgpack';

/**
 * From this many UTF-16 units on, a string's UTF-8 length is counted by Node (`Buffer.byteLength`, native)
 * instead of the codec's JavaScript loop, which was most of the codec's time for a long string: about
 * 80% of encoding 64 KiB of ASCII. Below it the loop is cheaper than the call into Node.
 */
export const COUNT_NATIVELY_FROM = 256;

/** The codec's members this relies on: not in its typings, so checked before use (see below). */
interface EncoderInternals {
  encodeString(text: string): void;
  writeStringHeader(byteLength: number): void;
  ensureBufferSizeToWrite(size: number): void;
  bytes: Uint8Array;
  pos: number;
}

const codecString = (Encoder.prototype as unknown as EncoderInternals).encodeString;
const textEncoder = new TextEncoder();

/**
 * True when the installed @msgpack/msgpack has the members `createFrameEncoder` replaces and uses; a
 * release that renamed them gets the codec's own string encoding (slower, same bytes), and a test fails.
 */
export const countsStringsNatively =
  typeof codecString === 'function' &&
  typeof (Encoder.prototype as unknown as EncoderInternals).writeStringHeader === 'function' &&
  typeof (Encoder.prototype as unknown as EncoderInternals).ensureBufferSizeToWrite === 'function';

/**
 * The encoder of data-plane frames: the codec (`ignoreUndefined`, as the decoder's other side expects),
 * with long strings anywhere in the value (a field of an object, an array element) counted natively.
 * Its public API has no hook for strings, so one internal method is replaced, on this instance only.
 * The bytes are the codec's: the same header for the same length, then the codec's own UTF-8 writer
 * for long strings (TextEncoder, a lone surrogate as U+FFFD, which Node counts as the same 3 bytes).
 */
export function createFrameEncoder(): Encoder {
  const encoder = new Encoder({ ignoreUndefined: true });
  if (!countsStringsNatively) return encoder;
  const internals = encoder as unknown as EncoderInternals;
  internals.encodeString = function encodeString(this: EncoderInternals, text: string): void {
    if (text.length < COUNT_NATIVELY_FROM) return codecString.call(this, text);
    const byteLength = Buffer.byteLength(text, 'utf8');
    this.ensureBufferSizeToWrite(5 + byteLength);
    this.writeStringHeader(byteLength);
    textEncoder.encodeInto(text, this.bytes.subarray(this.pos, this.pos + byteLength));
    this.pos += byteLength;
  };
  return encoder;
}
