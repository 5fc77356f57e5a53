import { describe, expect, it } from '@jest/globals';
import { KeysInFlight } from '../../lib/node/keys-in-flight.js';
import { keyHash } from '../../lib/node/rendezvous.js';
import { seededRandom } from '../support/zipf.js';

describe('KeysInFlight', () => {
  it('counts like a map of key to requests in flight through growth, shrinking and colliding keys', () => {
    const table = new KeysInFlight();
    const model = new Map<number, number>();
    const random = seededRandom(3);
    // Hashes of real keys, plus keys sharing their low bits (the same slot) and unsigned forms.
    const keys = Array.from({ length: 300 }, (_, i) => keyHash(`customer-${i}`));
    for (let i = 0; i < 100; i++) keys.push((i << 16) | 5, (i << 20) | 7);
    const live: number[] = [];
    let mismatches = 0;
    let mostEntries = 0;
    for (let step = 0; step < 200_000; step++) {
      // Phases of rising and falling load, so the table grows past 64 slots and shrinks back.
      const adding = live.length === 0 || random() < (Math.floor(step / 20_000) % 2 === 0 ? 0.6 : 0.4);
      if (adding) {
        const key = keys[Math.floor(random() * keys.length)];
        table.add(key);
        model.set(key, (model.get(key) ?? 0) + 1);
        live.push(key);
      } else {
        const at = Math.floor(random() * live.length);
        const key = live[at];
        live[at] = live[live.length - 1];
        live.pop();
        table.release(key);
        const count = model.get(key)! - 1;
        if (count === 0) model.delete(key);
        else model.set(key, count);
      }
      mostEntries = Math.max(mostEntries, model.size);
      const probe = keys[Math.floor(random() * keys.length)];
      if (table.of(probe) !== (model.get(probe) ?? 0) || table.size !== model.size) mismatches++;
    }
    for (const key of keys) if (table.of(key) !== (model.get(key) ?? 0)) mismatches++;
    expect(mismatches).toBe(0);
    // The phases did fill the table beyond its first 64 slots' half.
    expect(mostEntries).toBeGreaterThan(100);
  });

  it('reads a key hashed unsigned as the same key, and ignores a release of a key not in flight', () => {
    const table = new KeysInFlight();
    const key = keyHash('customer-7');
    table.add(key >>> 0);
    table.add(key);
    table.release(keyHash('customer-8'));
    expect([table.of(key), table.of(key >>> 0), table.size]).toEqual([2, 2, 1]);
    table.release(key);
    table.release(key >>> 0);
    expect([table.of(key), table.size]).toEqual([0, 0]);
  });
});
