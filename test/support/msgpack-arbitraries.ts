import fc from 'fast-check';
import { Encoder } from '@msgpack/msgpack';

/** What the codec itself writes for `frame`, length prefix included (as the frame writer's encoder). */
export function codecBytes(frame: unknown[]): Buffer {
  const body = new Encoder({ ignoreUndefined: true }).encode(frame);
  const out = Buffer.alloc(body.length + 4);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** Each MessagePack integer width, at and around its bounds. */
const bounds = [0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000];

/** Frame ids: each unsigned width, at its bounds. */
export const frameId = fc.oneof(
  fc.constantFrom(0, ...bounds.slice(0, -1)),
  fc.integer({ min: 0, max: 0x7f }),
  fc.integer({ min: 0x80, max: 0xffff }),
  fc.integer({ min: 0x10000, max: 0xffffffff }),
);

const integer = fc.oneof(
  fc.constantFrom(
    ...bounds,
    ...[0x20, 0x21, 0x80, 0x81, 0x8000, 0x8001, 0x80000000, 0x80000001].map((n) => -n),
  ),
  fc.integer({ min: -0x80000000, max: 0xffffffff }),
  fc.integer({ min: -40_000, max: 40_000 }),
);

/** Values a frame carries: every kind the hand-written paths take or must leave to the codec. */
export const frameValue = fc.oneof(
  integer,
  fc.maxSafeInteger(),
  fc.double(),
  fc.constant(-0),
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 8 }), // lone surrogates among them
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 300 }),
  // Each binary header width, and the in-place size for large ones (made once: cheap to draw).
  fc.constantFrom(...[0, 255, 256, 65_535, 65_536, 70_000].map((size) => Buffer.alloc(size, size & 0xff))),
  fc.dictionary(fc.string(), fc.oneof(fc.integer(), fc.string())),
  fc.array(fc.integer()),
  // Int lists: by hand up to 15, an array 16 header from 16 on; a non-integer sends one to the codec.
  fc.array(integer, { maxLength: 17 }),
  fc.array(integer, { minLength: 14, maxLength: 17, size: 'max' }),
  fc.array(fc.oneof(integer, fc.constant(0.5), fc.constant(-0)), { maxLength: 15 }),
);

/** Ways received bytes go wrong: none, cut short, one byte changed, bytes added. */
export const damage = fc.oneof(
  fc.constant((bytes: Buffer) => bytes),
  fc.nat().map((n) => (bytes: Buffer) => bytes.subarray(0, n % (bytes.length + 1))),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([n, byte]) => (bytes: Buffer) => {
    const copy = Buffer.from(bytes);
    if (copy.length > 0) copy[n % copy.length] = byte;
    return copy;
  }),
  fc.uint8Array({ minLength: 1, maxLength: 4 }).map((extra) => (bytes: Buffer) => {
    return Buffer.concat([bytes, extra]);
  }),
);

/**
 * `body` inside a larger buffer, as in a received chunk: `before` bytes ahead of it, `after` bytes behind
 * it (none: the frame ends the chunk, where reading past it throws). The body starts at `before`.
 */
export function inChunk(body: Buffer, before: number, after: number): Buffer {
  return Buffer.concat([Buffer.alloc(before, 0xc1), body, Buffer.alloc(after, 0xc1)]);
}
