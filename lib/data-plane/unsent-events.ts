/** Where an encoded frame sits in a FrameWriter's batch, so that it can be taken back unsent. */
export interface QueuedFrame {
  batch: number;
  start: number;
  size: number;
}

interface UnsentEvent extends QueuedFrame {
  pattern: string;
  deadline: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Events queued on a connection and not yet handed to its socket. Each waits at most `timeoutMs`:
 * one timer for all of them, armed for the oldest (they are settled in the order they were queued).
 */
export class UnsentEvents {
  private waiting: UnsentEvent[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly timeoutMs: number,
    /** Takes an expired event's frame back from the writer and says why it failed. */
    private readonly expire: (event: QueuedFrame & { pattern: string }) => unknown,
  ) {}

  get size(): number {
    return this.waiting.length;
  }

  add(frame: QueuedFrame, pattern: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ ...frame, pattern, deadline: performance.now() + this.timeoutMs, resolve, reject });
      if (this.timer === undefined) this.arm(this.timeoutMs);
    });
  }

  /** Everything queued was handed to the socket. */
  written(): void {
    if (this.waiting.length === 0) return;
    const settled = this.waiting;
    this.waiting = [];
    this.disarm();
    for (const event of settled) event.resolve();
  }

  /** Fails those `matches` picks (their frames were already taken back). */
  failWhere(matches: (event: QueuedFrame & { pattern: string }) => unknown): void {
    const kept: UnsentEvent[] = [];
    for (const event of this.waiting) {
      const error = matches(event);
      if (error === undefined) kept.push(event);
      else event.reject(error);
    }
    this.waiting = kept;
    if (kept.length === 0) this.disarm();
  }

  /** The connection is gone: every event fails with the error made for it. */
  failAll(errorFor: (pattern: string) => unknown): void {
    const settled = this.waiting;
    this.waiting = [];
    this.disarm();
    for (const event of settled) event.reject(errorFor(event.pattern));
  }

  private onTimer(): void {
    this.timer = undefined;
    // Monotonic, as the timer is: a wall clock set back must not keep an event past its timeout.
    const now = performance.now();
    while (this.waiting.length > 0 && this.waiting[0].deadline <= now) {
      const event = this.waiting.shift()!;
      event.reject(this.expire(event));
    }
    if (this.waiting.length > 0) this.arm(this.waiting[0].deadline - now);
  }

  private arm(delay: number): void {
    // Timers may fire up to a millisecond early: never less than one, and re-armed until due.
    this.timer = setTimeout(() => this.onTimer(), Math.max(1, Math.ceil(delay)));
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
