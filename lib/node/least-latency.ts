import type { BalancingStrategy } from './round-robin.js';

/**
 * Power of two choices by cost (Finagle's and Linkerd's peak-EWMA balancer): two distinct candidates at
 * random, the cheaper one wins, where cost is the decayed latency estimate times (requests in flight + 1).
 * A replica never heard from costs 0 and is tried at once; an avoided one's estimate decays with time, so
 * it is tried again. Shares follow speed, not turns: equal replicas get roughly, not exactly, equal shares.
 */
export class LeastLatency<T> implements BalancingStrategy<T> {
  constructor(
    /** The candidate's expected cost now: its decayed latency estimate x (in flight + 1). */
    private readonly cost: (candidate: T) => number,
    private readonly random: () => number = Math.random,
  ) {}

  select(candidates: readonly T[]): T | undefined {
    const count = candidates.length;
    if (count <= 1) return candidates[0];
    const a = Math.floor(this.random() * count) % count;
    // The second is drawn from the others, so the two always differ.
    let b = Math.floor(this.random() * (count - 1)) % (count - 1);
    if (b >= a) b++;
    const first = candidates[a];
    const second = candidates[b];
    return this.cost(second) < this.cost(first) ? second : first;
  }
}
