import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { transformPatternToRoute } from '@nestjs/microservices/utils/index.js';
import fc from 'fast-check';
import { patternRoute } from '../../lib/nest/pattern-route.js';

// Client and server must derive the same route from a pattern, or requests find no handler.
describe('patternRoute', () => {
  const nest = (pattern: unknown) => transformPatternToRoute(pattern as never) as string;
  let fellBack = 0;
  const counted = (pattern: unknown) => {
    fellBack++;
    return nest(pattern);
  };

  it('gives Nest’s route for the shapes it computes itself, without falling back', () => {
    fellBack = 0;
    for (const pattern of ['sum', { cmd: 'sum' }, { cmd: 7 }, { 'a b': 'c/d' }, { cmd: '' }]) {
      expect(patternRoute(pattern, counted)).toBe(nest(pattern));
    }
    expect(fellBack).toBe(0);
  });

  it('falls back to Nest for escapes, several keys and nested values', () => {
    fellBack = 0;
    for (const pattern of [
      { cmd: 'a"b' },
      { 'c\\': 'x' },
      { b: 1, a: 2 },
      { cmd: { x: 1 } },
      42,
      { a: true },
    ]) {
      expect(patternRoute(pattern, counted)).toBe(nest(pattern));
    }
    expect(fellBack).toBe(6);
  });

  it('agrees with Nest on random patterns', () => {
    // Any code unit, so control characters and lone surrogates are covered too.
    const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }));
    const leaf = fc.oneof(text, fc.integer(), fc.double({ noNaN: true }), fc.boolean());
    const pattern = fc.oneof(
      text,
      fc.dictionary(text, leaf, { maxKeys: 1 }),
      fc.dictionary(text, fc.oneof(leaf, fc.dictionary(text, leaf)), { maxKeys: 4 }),
    );
    fc.assert(
      fc.property(pattern, (value) => {
        expect(patternRoute(value, nest)).toBe(nest(value));
      }),
      { numRuns: 2000 },
    );
  });
});
