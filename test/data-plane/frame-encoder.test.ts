import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Decoder, Encoder } from '@msgpack/msgpack';
import {
  COUNT_NATIVELY_FROM,
  countsStringsNatively,
  createFrameEncoder,
} from '../../lib/data-plane/frame-encoder.js';

const codec = new Encoder({ ignoreUndefined: true });
const same = (value: unknown) =>
  expect(Buffer.from(createFrameEncoder().encode(value)).equals(Buffer.from(codec.encode(value)))).toBe(true);

/** `units` UTF-16 units of text: ASCII, or cycling through 1- to 4-byte UTF-8 characters. */
function text(units: number, multibyte = true): string {
  const pieces = multibyte ? ['a', 'ż', '語', '🚀'] : ['a'];
  let out = '';
  for (let i = 0; out.length < units; i++) out += pieces[i % pieces.length];
  return out.slice(0, units);
}

describe('the frame encoder (long strings counted natively, anywhere in a value)', () => {
  it('is active with the installed codec', () => {
    // If a codec release renames what it replaces, strings stay correct but slow: this says so.
    expect(countsStringsNatively).toBe(true);
  });

  it('writes the codec’s bytes for long strings nested in objects and arrays', () => {
    const strings = [
      text(COUNT_NATIVELY_FROM - 1),
      text(COUNT_NATIVELY_FROM, false),
      text(COUNT_NATIVELY_FROM),
      // A slice through a surrogate pair leaves a lone high surrogate at the end: U+FFFD, 3 bytes.
      text(COUNT_NATIVELY_FROM + 3).slice(0, -1),
      '\udc00' + text(COUNT_NATIVELY_FROM),
      // Around the str 16 / str 32 header bounds, in bytes.
      'x'.repeat(0xffff),
      'x'.repeat(0x10000),
      'é'.repeat(0x8000),
      text(70_000),
    ];
    for (const value of strings) {
      same(value);
      same({ body: value, n: 1, nested: { list: [value, 2, undefined] } });
      same([value, value]);
    }
  });

  it('agrees with the codec on random values with long strings in them', () => {
    const long = fc.oneof(
      fc.string({ minLength: COUNT_NATIVELY_FROM - 2, maxLength: COUNT_NATIVELY_FROM * 3 }),
      fc.string({ unit: 'binary', minLength: COUNT_NATIVELY_FROM - 2, maxLength: COUNT_NATIVELY_FROM * 3 }),
      fc.string({ unit: 'grapheme', minLength: COUNT_NATIVELY_FROM, maxLength: COUNT_NATIVELY_FROM * 2 }),
    );
    const leaf = fc.oneof(long, fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie('node'), { maxKeys: 4 }),
      ),
    })).node;
    fc.assert(
      fc.property(value, (v) => same(v)),
      { numRuns: 500 },
    );
  });

  it('decodes to the same string', () => {
    const value = { body: text(5000), tail: text(COUNT_NATIVELY_FROM, false) };
    expect(new Decoder().decode(createFrameEncoder().encode(value))).toEqual(value);
  });
});
