import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { Decoder, Encoder, decodeMulti } from '@msgpack/msgpack';

// frame-encoder.ts and small-values.ts call members of @msgpack/msgpack that are not in its typings. A
// release may rename them (the library then falls back to the public API and says so in other tests) or
// keep their names and change what they do, which would decode or encode wrong without a word. Each
// member is called here the way the library calls it and compared with the public API's result and with
// what the MessagePack spec says (the public API calls the same members, so it alone would change with
// them), and the dependency is pinned to the version these calls were checked against.

interface EncoderInternals {
  reinitializeState(): void;
  encodeString(text: string): void;
  writeStringHeader(byteLength: number): void;
  ensureBufferSizeToWrite(size: number): void;
  bytes: Uint8Array;
  pos: number;
}

interface DecoderInternals {
  reinitializeState(): void;
  setBuffer(buffer: Uint8Array): void;
  doDecodeSync(): unknown;
  pos: number;
}

const readJson = (path: string): { version: string; dependencies: Record<string, string> } =>
  JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as never;

/** A MessagePack string header for `length` bytes of UTF-8, from the spec. */
function stringHeader(length: number): Buffer {
  if (length < 32) return Buffer.from([0xa0 | length]);
  if (length < 0x100) return Buffer.from([0xd9, length]);
  const header = Buffer.alloc(length < 0x10000 ? 3 : 5);
  header[0] = length < 0x10000 ? 0xda : 0xdb;
  if (length < 0x10000) header.writeUInt16BE(length, 1);
  else header.writeUInt32BE(length, 1);
  return header;
}

const specString = (text: string): Buffer =>
  Buffer.concat([stringHeader(Buffer.byteLength(text)), Buffer.from(text)]);

const strings = ['', 'a', 'ż語🚀', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(200), 'x'.repeat(0x10000)];

describe('the @msgpack/msgpack members the library relies on', () => {
  it('are those of the exact version the package pins', () => {
    const pinned = readJson('../../package.json').dependencies['@msgpack/msgpack'];
    const installed = readJson('../../node_modules/@msgpack/msgpack/package.json').version;
    expect(pinned).toBe('3.1.3');
    expect(installed).toBe(pinned);
  });

  it('Encoder: encodeString writes what encode() writes for a string, and doEncode reaches it through the instance', () => {
    const encoder = new Encoder({ ignoreUndefined: true });
    const internals = encoder as unknown as EncoderInternals;
    const codecString = (Encoder.prototype as unknown as EncoderInternals).encodeString;
    expect(typeof codecString).toBe('function');
    for (const text of strings) {
      internals.reinitializeState();
      codecString.call(internals, text);
      const written = Buffer.from(internals.bytes.subarray(0, internals.pos));
      expect(written).toEqual(specString(text));
      expect(written).toEqual(Buffer.from(new Encoder().encode(text)));
    }
    // createFrameEncoder replaces the method on one instance: encoding must call it for every string.
    const seen: string[] = [];
    internals.encodeString = function (this: EncoderInternals, text: string): void {
      seen.push(text);
      codecString.call(this, text);
    };
    const value = { key: 'value', list: ['a', { deep: 'b' }] };
    expect(Buffer.from(encoder.encode(value))).toEqual(Buffer.from(new Encoder().encode(value)));
    expect(seen).toEqual(expect.arrayContaining(['value', 'a', 'b']));
  });

  it('Encoder: writeStringHeader writes the header encode() gives a string of that many bytes; ensureBufferSizeToWrite makes room', () => {
    const internals = new Encoder() as unknown as EncoderInternals;
    for (const length of [0, 31, 32, 255, 256, 0xffff, 0x10000]) {
      const expected = stringHeader(length);
      expect(Buffer.from(new Encoder().encode('x'.repeat(length))).subarray(0, expected.length)).toEqual(
        expected,
      );
      const headerSize = expected.length;
      internals.reinitializeState();
      internals.ensureBufferSizeToWrite(5 + length);
      expect(internals.bytes.length).toBeGreaterThanOrEqual(5 + length);
      internals.writeStringHeader(length);
      expect(internals.pos).toBe(headerSize);
      expect(Buffer.from(internals.bytes.subarray(0, internals.pos))).toEqual(
        expected.subarray(0, headerSize),
      );
    }
    // Growing keeps what was written.
    internals.reinitializeState();
    internals.writeStringHeader(3);
    const before = Buffer.from(internals.bytes.subarray(0, internals.pos));
    internals.ensureBufferSizeToWrite(internals.bytes.length * 4);
    expect(Buffer.from(internals.bytes.subarray(0, before.length))).toEqual(before);
  });

  it('Decoder: setBuffer then doDecodeSync twice reads two values as decodeMulti does, pos where they end; a cut value throws', () => {
    const internals = new Decoder() as unknown as DecoderInternals;
    const pairs: Array<[unknown, unknown]> = [
      [1, { traceparent: 'x' }],
      [{ a: 1, b: 'two' }, null],
      ['text ending in é', true],
      [[1, 2, 3], { deep: { er: [1.5, -1] } }],
      [new Uint8Array([1, 2, 3]), 'z'.repeat(300)],
    ];
    for (const [first, second] of pairs) {
      const bytes = Buffer.concat([new Encoder().encode(first), new Encoder().encode(second)]);
      // Inside a larger buffer, as the library hands it a frame's subarray.
      const frame = Buffer.concat([Buffer.from([0xaa, 0xbb]), bytes, Buffer.from([0xcc])]);
      internals.reinitializeState();
      internals.setBuffer(frame.subarray(2, 2 + bytes.length));
      const read = [internals.doDecodeSync(), internals.doDecodeSync()];
      expect(read).toEqual([first, second]);
      expect(read).toEqual([...decodeMulti(bytes)]);
      expect(internals.pos).toBe(bytes.length);
      internals.reinitializeState();
      internals.setBuffer(bytes.subarray(0, bytes.length - 1));
      expect(() => {
        internals.doDecodeSync();
        internals.doDecodeSync();
      }).toThrow();
    }
  });
});
