/** Why a datagram was refused as not fresh. */
export type ReplayFailure = 'replayed' | 'outsideTimeWindow';

export interface ReplayGuardOptions {
  /** Milliseconds a datagram's timestamp may differ from this clock (default 30000). */
  window?: number;
  /** Most senders remembered (default 10000); the least recently heard is forgotten first. */
  maxSenders?: number;
}

/**
 * Rejects a datagram that is not newer than the last one seen from the same sender boot (a replay or a
 * reordered duplicate), or whose timestamp is outside the window (a capture replayed after the sender
 * restarted with a new boot id).
 */
export class ReplayGuard {
  private readonly lastSeq = new Map<string, number>();
  private readonly window: number;
  private readonly maxSenders: number;

  constructor(options: ReplayGuardOptions = {}) {
    this.window = options.window ?? 30_000;
    this.maxSenders = options.maxSenders ?? 10_000;
  }

  check(boot: string, seq: number, timestamp: number, now = Date.now()): ReplayFailure | undefined {
    if (Math.abs(now - timestamp) > this.window) return 'outsideTimeWindow';
    const last = this.lastSeq.get(boot);
    if (last !== undefined && seq <= last) return 'replayed';
    // Delete and set again: Map order is then least recently heard first.
    this.lastSeq.delete(boot);
    this.lastSeq.set(boot, seq);
    if (this.lastSeq.size > this.maxSenders) {
      const oldest = this.lastSeq.keys().next().value;
      if (oldest !== undefined) this.lastSeq.delete(oldest);
    }
    return undefined;
  }
}
