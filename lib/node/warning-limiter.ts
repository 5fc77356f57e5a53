import type { KableWarning } from './errors.js';

/**
 * Counts dropped input by kind and reports each kind at most once per interval (with how many were seen
 * since the last report), so a flood of garbage costs a counter increment, not a log line each.
 */
export class WarningLimiter {
  readonly counts: Record<string, number> = {};
  private readonly pending = new Map<string, number>();
  private readonly lastReport = new Map<string, number>();

  constructor(
    private readonly report: (warning: KableWarning) => void,
    private readonly interval = 1000,
  ) {}

  count(kind: string, message: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    const unreported = (this.pending.get(kind) ?? 0) + 1;
    const now = Date.now();
    if (now - (this.lastReport.get(kind) ?? -Infinity) < this.interval) {
      this.pending.set(kind, unreported);
      return;
    }
    this.pending.delete(kind);
    this.lastReport.set(kind, now);
    try {
      this.report({ code: kind, message, count: unreported });
    } catch {
      // A throwing warning listener must not turn dropped input into a crash.
    }
  }
}
