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
 *
 * How late a tick came is measured on the monotonic clock (performance.now()): a wall clock stepped
 * forward (NTP, a resumed VM setting its time) is no stall, and one stepped back hides none. Each stall
 * is then placed on the registry's clock (Date.now(), as `lastSeen`), ending at the tick that noticed it.
 */
export class OwnStalls {
  /** [start, end) in Date.now() milliseconds (the clock of `lastSeen`), oldest first. */
  private readonly stalls: Array<[number, number]> = [];
  /** performance.now() of the last tick. */
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
  start(): void {
    this.lastTick = performance.now();
  }

  /** The sweep ticked; `now` is Date.now() (the registry's clock). Notes the stall if it came late. */
  tick(now: number): void {
    const at = performance.now();
    const late = this.lastTick === undefined ? 0 : at - (this.lastTick + this.period);
    this.lastTick = at;
    if (late > this.period) {
      this.stalls.push([now - late, now]);
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
