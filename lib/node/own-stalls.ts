/** Stalls kept at most: older ones no longer matter to a silence of nodeTimeout, and memory stays bounded. */
const MAX_STALLS = 64;

/**
 * When this node's own event loop was stalled (a long synchronous task, a GC pause, a paused VM or
 * container), the adverts its peers sent meanwhile wait unread in the socket, and the overdue sweep runs
 * before they are read. That silence was this node's, not its peers': without this record, every peer
 * silent for nodeTimeout including the stall would be evicted, then added again on its next advert, and
 * its connections dropped in between.
 *
 * The sweep notes each stall (a tick that came more than one sweep period late); a peer's silence is the
 * time since it was last heard minus the stalls inside that time. `lastSeen` itself stays what it was.
 */
export class OwnStalls {
  /** [start, end) in Date.now() milliseconds, oldest first. */
  private readonly stalls: Array<[number, number]> = [];
  private lastTick: number | undefined;
  /** Stalls noted so far (stats: ownStalls). */
  count = 0;

  constructor(
    /** The sweep's period: a tick later than this by more than one period counts as a stall. */
    private readonly period: number,
    /** Stalls ending longer ago than this are forgotten (nodeTimeout: none can matter after it). */
    private readonly horizon: number,
  ) {}

  /** Starts timing from now (the sweep started). */
  start(now: number): void {
    this.lastTick = now;
  }

  /** The sweep ticked at `now`: notes the stall if it came late. */
  tick(now: number): void {
    const expected = this.lastTick === undefined ? now : this.lastTick + this.period;
    this.lastTick = now;
    if (now - expected > this.period) {
      this.stalls.push([expected, now]);
      this.count++;
    }
    while (
      this.stalls.length > 0 &&
      (this.stalls.length > MAX_STALLS || now - this.stalls[0][1] > this.horizon)
    ) {
      this.stalls.shift();
    }
  }

  /** Milliseconds since `since` during which this node was not stalled. */
  listenedSince(since: number, now: number): number {
    let stalled = 0;
    for (const [start, end] of this.stalls) {
      const from = Math.max(start, since);
      const to = Math.min(end, now);
      if (to > from) stalled += to - from;
    }
    return now - since - stalled;
  }
}
