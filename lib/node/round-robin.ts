/**
 * A balancing strategy picks one of the candidates it is given. Candidates arrive in the cluster-wide
 * order, so every client walks the replicas in the same sequence.
 */
export interface BalancingStrategy<T> {
  select(candidates: readonly T[]): T | undefined;
}

/**
 * Round robin whose cursor survives churn: when a replica joins or leaves, the next pick continues from
 * where the cursor was instead of starting over at the first replica (which would overload it).
 */
export class RoundRobin<T> implements BalancingStrategy<T> {
  private cursor = 0;

  select(candidates: readonly T[]): T | undefined {
    const count = candidates.length;
    if (count === 0) return undefined;
    const at = this.cursor < count ? this.cursor : this.cursor % count;
    this.cursor = at + 1;
    return candidates[at];
  }
}
