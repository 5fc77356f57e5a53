/**
 * A token bucket: `burst` at once, then `perSecond` on average. Times are the caller's milliseconds
 * (one clock per budget), passed in so the budget needs no timer of its own.
 */
export class RateBudget {
  private tokens: number;
  private at: number | undefined;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes one now if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** Books the next one, even if it is not there yet; returns when it is (`now`, or later). */
  reserve(now: number): number {
    this.refill(now);
    this.tokens--;
    return this.tokens >= 0 ? now : now - (this.tokens * 1000) / this.perSecond;
  }

  /** Nothing taken or booked that the bucket has not earned back: forgetting it changes nothing. */
  idle(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    if (this.at !== undefined && now > this.at)
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.perSecond) / 1000);
    if (this.at === undefined || now > this.at) this.at = now;
  }
}

/** One RateBudget per key (an address), at most `max` kept: an idle one is forgotten to make room. */
export class RateBudgets {
  private readonly budgets = new Map<string, RateBudget>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly max: number,
  ) {}

  /** The budget of `key`, or undefined when `max` are kept and none of them is idle. */
  of(key: string, now: number): RateBudget | undefined {
    let budget = this.budgets.get(key);
    if (budget !== undefined) return budget;
    if (this.budgets.size >= this.max) {
      let forgotten = false;
      for (const [other, kept] of this.budgets) {
        if (!kept.idle(now)) continue;
        this.budgets.delete(other);
        forgotten = true;
        break;
      }
      if (!forgotten) return undefined;
    }
    budget = new RateBudget(this.perSecond, this.burst);
    this.budgets.set(key, budget);
    return budget;
  }

  clear(): void {
    this.budgets.clear();
  }
}
