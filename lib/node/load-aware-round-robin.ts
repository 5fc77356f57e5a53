import type { BalancingStrategy } from './round-robin.js';

/**
 * A candidate is passed over, for one pick, when its load is above SKIP_FACTOR times the mean load of
 * the other candidates plus SKIP_MARGIN. With 20 requests in flight over 3 replicas, a replica that
 * stops answering collects at most 9 of them (under half) before it is passed over; equally fast replicas
 * never differ by that much, so they keep the exact round robin.
 */
export const SKIP_FACTOR = 1.25;
export const SKIP_MARGIN = 2;

/**
 * Round robin in the shared cluster order, whose cursor survives churn like RoundRobin's, but which
 * skips, for this pick, a candidate whose load (this caller's requests in flight to it) is well above
 * the others'. A slow or stalled replica stops collecting requests within milliseconds instead of
 * drawing a closed loop's every request onto itself; the skipped one keeps its place in the order.
 */
export class LoadAwareRoundRobin<T> implements BalancingStrategy<T> {
  private cursor = 0;
  /** Picks that passed over the candidate whose turn it was. */
  skips = 0;

  constructor(private readonly load: (candidate: T) => number) {}

  select(candidates: readonly T[]): T | undefined {
    const count = candidates.length;
    if (count === 0) return undefined;
    const at = this.cursor < count ? this.cursor : this.cursor % count;
    const first = candidates[at];
    // The usual case costs one lookup: a load within the margin is never "well above" anyone.
    if (count === 1 || this.load(first) <= SKIP_MARGIN) {
      this.cursor = at + 1;
      return first;
    }
    const loads = candidates.map(this.load);
    let total = 0;
    for (const load of loads) total += load;
    for (let step = 0; step < count; step++) {
      const i = (at + step) % count;
      const othersMean = (total - loads[i]) / (count - 1);
      if (loads[i] <= SKIP_FACTOR * othersMean + SKIP_MARGIN) {
        if (step > 0) this.skips++;
        this.cursor = i + 1;
        return candidates[i];
      }
    }
    // Unreachable (the least loaded is never above the others' mean), but never pick nothing.
    this.cursor = at + 1;
    return first;
  }
}
