import { describe, expect, it } from '@jest/globals';
import { Rendezvous, identityHash, keyHash, loadBound } from '../../lib/node/rendezvous.js';
import { seededRandom, zipf } from '../support/zipf.js';

interface Replica {
  host: string;
  port: number;
}

const KEYS = 100_000;
const idle = (): number => 0;
const byAddress = (replica: Replica): number => identityHash(replica.host, replica.port);

/** Replicas as in Kubernetes (one port, an address each) or on one machine (loopback, a port each). */
const layouts: Record<string, (count: number) => Replica[]> = {
  'pod addresses': (count) =>
    Array.from({ length: count }, (_, i) => ({ host: `10.1.${i >> 8}.${i & 255}`, port: 4000 })),
  'loopback ports': (count) =>
    Array.from({ length: count }, (_, i) => ({ host: '127.0.0.1', port: 41000 + i })),
};

function homes(replicas: Replica[], rendezvous = new Rendezvous<Replica>(byAddress, idle)): Replica[] {
  const keys = hashedKeys();
  return keys.map((key) => rendezvous.select(replicas, key)!);
}

let keyCache: number[] | undefined;
function hashedKeys(): number[] {
  return (keyCache ??= Array.from({ length: KEYS }, (_, i) => keyHash(`customer-${i}`)));
}

describe('Rendezvous', () => {
  it('is deterministic, and two independent instances agree on every key', () => {
    const replicas = layouts['pod addresses'](10);
    // The second caller learnt of the replicas in another order and holds its own objects for them.
    const seenElsewhere = replicas.map((replica) => ({ ...replica })).reverse();
    const mine = homes(replicas);
    const again = homes(replicas);
    const theirs = homes(seenElsewhere);
    let changed = 0;
    let disagreements = 0;
    for (let i = 0; i < KEYS; i++) {
      if (again[i] !== mine[i]) changed++;
      if (mine[i].host !== theirs[i].host) disagreements++;
    }
    expect({ changed, disagreements }).toEqual({ changed: 0, disagreements: 0 });
    expect(keyHash(42)).toBe(keyHash('42'));
  });

  it('gives each of 10 replicas about a tenth of 100,000 keys', () => {
    for (const layout of Object.values(layouts)) {
      const replicas = layout(10);
      const counts = new Map<Replica, number>();
      for (const home of homes(replicas)) counts.set(home, (counts.get(home) ?? 0) + 1);
      for (const replica of replicas) {
        // 10,000 expected; a binomial's standard deviation is 95 here, so ±6% is over 6 sigmas.
        expect(counts.get(replica)).toBeGreaterThan(9_400);
        expect(counts.get(replica)).toBeLessThan(10_600);
      }
    }
  });

  it('moves at most 11% of 100,000 keys from 10 to 11 replicas, each to the new one', () => {
    for (const [name, layout] of Object.entries(layouts)) {
      const eleven = layout(11);
      const before = homes(eleven.slice(0, 10));
      const after = homes(eleven);
      let moved = 0;
      let elsewhere = 0;
      for (let i = 0; i < KEYS; i++) {
        if (after[i] === before[i]) continue;
        moved++;
        if (after[i] !== eleven[10]) elsewhere++;
      }
      // Ideal: 1/11 = 9.1%.
      expect({ name, moved: moved / KEYS <= 0.11, elsewhere }).toEqual({ name, moved: true, elsewhere: 0 });
      expect(moved / KEYS).toBeGreaterThan(0.08);
    }
  });

  it("removing one of 10 replicas moves only that replica's keys", () => {
    for (const [name, layout] of Object.entries(layouts)) {
      const ten = layout(10);
      const gone = ten[3];
      const before = homes(ten);
      const after = homes(ten.filter((replica) => replica !== gone));
      let moved = 0;
      let movedFromOthers = 0;
      for (let i = 0; i < KEYS; i++) {
        if (after[i] === before[i]) continue;
        moved++;
        if (before[i] !== gone) movedFromOthers++;
      }
      expect({ name, movedFromOthers, share: moved / KEYS <= 0.105 }).toEqual({
        name,
        movedFromOthers: 0,
        share: true,
      });
    }
  });

  it('keeps every replica within the load bound under a Zipf(1.1) key stream, 64 requests in flight over 4 replicas', () => {
    const replicas = layouts['loopback ports'](4);
    const inFlight = new Map<Replica, number>(replicas.map((replica) => [replica, 0]));
    const rendezvous = new Rendezvous<Replica>(byAddress, (replica) => inFlight.get(replica)!);
    const random = seededRandom(7);
    const nextKey = zipf(10_000, 1.1, random);
    const home = new Rendezvous<Replica>(byAddress, idle);
    const pending: { replica: Replica; rank: number }[] = [];
    let worstOverBound = -Infinity;
    let worstOverMean = -Infinity;
    let coldCalls = 0;
    let coldAtHome = 0;
    for (let call = 0; call < 100_000; call++) {
      const rank = nextKey();
      const key = keyHash(`customer-${rank}`);
      let total = 0;
      for (const count of inFlight.values()) total += count;
      const bound = loadBound(total, replicas.length);
      const replica = rendezvous.select(replicas, key)!;
      worstOverBound = Math.max(worstOverBound, inFlight.get(replica)! - bound);
      inFlight.set(replica, inFlight.get(replica)! + 1);
      pending.push({ replica, rank });
      // The 10 hottest keys are a third of the stream: they spill over. The rest should stay at home.
      if (rank >= 10) {
        coldCalls++;
        if (replica === home.select(replicas, key)) coldAtHome++;
      }
      if (pending.length === 64) {
        // A random one of the 64 answers, so replicas drain at uneven times.
        const done = pending.splice(Math.floor(random() * pending.length), 1)[0];
        inFlight.set(done.replica, inFlight.get(done.replica)! - 1);
      }
      const mean = (total + 1) / replicas.length;
      worstOverMean = Math.max(worstOverMean, inFlight.get(replica)! - (Math.ceil(1.25 * mean) + 1));
    }
    // Taken only while at most the bound: with this request, at most ⌈1.25 x mean⌉ + 1.
    expect(worstOverBound).toBeLessThanOrEqual(0);
    expect(worstOverMean).toBeLessThanOrEqual(0);
    expect(coldAtHome / coldCalls).toBeGreaterThanOrEqual(0.9);
    expect(rendezvous.passedOn).toBeGreaterThan(0);
  });

  it('the bound is the ceiling of 1.25 x the mean counting this request, at least 1', () => {
    expect(loadBound(0, 3)).toBe(1);
    expect(loadBound(63, 8)).toBe(10);
    expect(loadBound(64, 8)).toBe(11);
  });
});
