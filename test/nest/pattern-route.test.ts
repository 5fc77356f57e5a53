import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { transformPatternToRoute } from '@nestjs/microservices/utils/index.js';
import fc from 'fast-check';
import { fastPatternRoute } from '../../lib/nest/pattern-route.js';

// Client and server must derive the same route from a pattern, or requests find no handler.
describe('fastPatternRoute', () => {
  const nest = (pattern: unknown) => transformPatternToRoute(pattern as never) as string;
  // What the client does: the fast route, else Nest's.
  const route = (pattern: unknown) => fastPatternRoute(pattern) ?? nest(pattern);

  it('gives Nest’s route for the shapes it computes itself', () => {
    for (const pattern of ['sum', { cmd: 'sum' }, { cmd: 7 }, { 'a b': 'c/d' }, { cmd: '' }]) {
      expect(fastPatternRoute(pattern)).toBe(nest(pattern));
    }
  });

  it('leaves escapes, several keys and nested values to Nest', () => {
    for (const pattern of [
      { cmd: 'a"b' },
      { 'c\\': 'x' },
      { b: 1, a: 2 },
      { cmd: { x: 1 } },
      42,
      { a: true },
    ]) {
      expect(fastPatternRoute(pattern)).toBeUndefined();
    }
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
        expect(route(value)).toBe(nest(value));
        // Again, now from the cache of routes already built.
        expect(route(value)).toBe(nest(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('stays right past the cap of routes it remembers', () => {
    // Numbers and strings under one key must not share an entry: {"id":7} is not {"id":"7"}.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 12_000; i++) {
        expect(fastPatternRoute({ id: i })).toBe(`{"id":${i}}`);
        if (i % 1000 === 0) expect(fastPatternRoute({ id: String(i) })).toBe(`{"id":"${i}"}`);
      }
    }
    expect(fastPatternRoute({ cmd: 'sum' })).toBe(nest({ cmd: 'sum' }));
  });
});
