import { MAX_TIMER_MS } from '../node/validate-options.js';

/**
 * Node's timers count whole milliseconds from a floored loop time, so one may fire up to a millisecond
 * before the `performance.now()` time it was set for. Entries due within this margin expire on that
 * firing rather than costing another timer turn.
 */
const EARLY_MS = 1;

/**
 * Something with a deadline in a RequestDeadlines list. The list's links live on the entry itself, so
 * listing and unlisting allocate nothing and an entry is taken out in O(1), without searching.
 */
export abstract class DeadlineEntry {
  /** `performance.now()` time at which the entry expires (meaningful while listed). */
  due = 0;
  /** Neighbours in the list: `earlier` is due no later than this entry, `later` no earlier. */
  earlier: DeadlineEntry | undefined = undefined;
  later: DeadlineEntry | undefined = undefined;
  /** Set while listed (the head has no `earlier`, so the links alone cannot tell). */
  listed = false;

  /** Called once when the deadline passes, after the entry has left the list. */
  abstract onDeadline(): void;
}

/**
 * The deadlines of one client's requests, with one timer for all of them: a timer per request (set on
 * send, cleared on reply) was 4 to 5% of a busy client's CPU profile.
 *
 * Entries are kept in due order. A client gives every request the same timeout, so a new entry is
 * almost always due last and goes at the tail; an earlier one is placed by walking back from the tail.
 * The timer is set for the head and set again only when an earlier entry arrives or when it fires; a
 * removed head leaves it as it is (it fires early, finds nothing due and waits for the new head). With
 * nothing listed there is no timer, so an idle client keeps no timer and a pending request, like a
 * Nest request, keeps the process alive (the timer is not unref'd).
 */
export class RequestDeadlines {
  private head: DeadlineEntry | undefined;
  private tail: DeadlineEntry | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (its target time); Infinity with no timer. */
  private timerDue = Infinity;
  private count = 0;

  /**
   * @param onError told of an exception from an entry's onDeadline; the other due entries still expire
   *   and nothing reaches the event loop.
   */
  constructor(private readonly onError: (error: unknown) => void) {}

  /** Entries listed now. */
  get size(): number {
    return this.count;
  }

  /** Whether the timer is set (never with nothing listed). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** Lists `entry` to expire `timeoutMs` from now (at most MAX_TIMER_MS: it is re-timed on the way). */
  add(entry: DeadlineEntry, timeoutMs: number): void {
    // Listed twice, its links would tie the list in a knot: a second add moves it instead.
    if (entry.listed) this.remove(entry);
    const due = performance.now() + timeoutMs;
    entry.due = due;
    entry.listed = true;
    this.count++;
    let before = this.tail;
    while (before !== undefined && before.due > due) before = before.earlier;
    entry.earlier = before;
    if (before === undefined) {
      entry.later = this.head;
      this.head = entry;
    } else {
      entry.later = before.later;
      before.later = entry;
    }
    if (entry.later === undefined) this.tail = entry;
    else entry.later.earlier = entry;
    if (due < this.timerDue) this.arm(due);
  }

  /** Takes `entry` out (a no-op if it is not listed): the request finished before its deadline. */
  remove(entry: DeadlineEntry): void {
    if (!entry.listed) return;
    this.unlink(entry);
    if (this.head === undefined) this.disarm();
  }

  private unlink(entry: DeadlineEntry): void {
    const { earlier, later } = entry;
    if (earlier === undefined) this.head = later;
    else earlier.later = later;
    if (later === undefined) this.tail = earlier;
    else later.earlier = earlier;
    entry.earlier = entry.later = undefined;
    entry.listed = false;
    this.count--;
  }

  /** Bound once: a closure per arming would be the very allocation this class saves. */
  private readonly fire = (): void => {
    this.timer = undefined;
    this.timerDue = Infinity;
    // Strictly before: an entry listed by an onDeadline below is due at least 1 ms after `now`, so it
    // never expires in this pass and a request re-sent on its own timeout cannot loop here.
    const limit = performance.now() + EARLY_MS;
    while (this.head !== undefined && this.head.due < limit) {
      const entry = this.head;
      this.unlink(entry);
      try {
        entry.onDeadline();
      } catch (error) {
        this.onError(error);
      }
    }
    if (this.head !== undefined && this.head.due < this.timerDue) this.arm(this.head.due);
  };

  private arm(due: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    const delay = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(due - performance.now())));
    // A due time beyond the longest timer: fire then and set the timer again for the rest.
    this.timerDue = delay === MAX_TIMER_MS ? performance.now() + delay : due;
    this.timer = setTimeout(this.fire, delay);
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }
}
