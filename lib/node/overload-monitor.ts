import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { busyStateOf } from './busy-state.js';
import type { NodeControls } from './node-controls.js';

/** Overload detection of the `busy` node option. */
export interface OverloadOptions {
  /** Event-loop delay (p99 over one check, milliseconds) above which the node turns DOING_SOMETHING. Required. */
  maxEventLoopDelayMs: number;
  /** Milliseconds between two checks (default 500). */
  checkInterval?: number;
  /**
   * Hysteresis: the node returns to RUNNING once the delay stays under this share of the limit for
   * `recoverChecks` checks in a row (defaults 0.5 and 2), so it does not flap at the threshold.
   */
  recoverRatio?: number;
  /** Checks in a row under the recovery ratio before the node is RUNNING again (default 2). */
  recoverChecks?: number;
}

/**
 * Takes an overloaded node out of rotation: while its own event loop lags, it is DOING_SOMETHING
 * ("overloaded"), so balancers elsewhere skip it and requests that still arrive are refused and
 * retried on another replica: overload costs latency, not errors.
 */
export class OverloadMonitor {
  private histogram: IntervalHistogram | undefined;
  private timer: NodeJS.Timeout | undefined;
  private release: (() => void) | undefined;
  private calmChecks = 0;
  private lastCheck = 0;
  private readonly limitNs: number;
  private readonly recoverNs: number;
  private readonly checkInterval: number;
  private readonly recoverChecks: number;
  /** How many times the node was found overloaded (reported in stats). */
  overloads = 0;

  constructor(
    private readonly node: NodeControls,
    options: OverloadOptions,
  ) {
    this.limitNs = options.maxEventLoopDelayMs * 1e6;
    this.recoverNs = this.limitNs * (options.recoverRatio ?? 0.5);
    this.checkInterval = options.checkInterval ?? 500;
    this.recoverChecks = options.recoverChecks ?? 2;
  }

  get overloaded(): boolean {
    return this.release !== undefined;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
    this.lastCheck = performance.now();
    this.timer = setInterval(() => this.check(), this.checkInterval);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.histogram?.disable();
    this.histogram = undefined;
    this.release?.();
    this.release = undefined;
  }

  private check(): void {
    const histogram = this.histogram;
    if (histogram === undefined) return;
    // The histogram alone can miss one long block (its sampling timer shares the blocked turn), so the
    // lateness of this check's own timer counts too.
    const now = performance.now();
    const lateness = (now - this.lastCheck - this.checkInterval) * 1e6;
    this.lastCheck = now;
    const delay = Math.max(histogram.percentile(99), lateness);
    histogram.reset();
    if (this.release === undefined) {
      if (delay > this.limitNs && this.node.state.state === 'RUNNING') {
        this.overloads++;
        this.calmChecks = 0;
        this.release = busyStateOf(this.node).hold(
          `overloaded: event loop delay ${Math.round(delay / 1e6)} ms`,
        );
      }
      return;
    }
    this.calmChecks = delay < this.recoverNs ? this.calmChecks + 1 : 0;
    if (this.calmChecks >= this.recoverChecks) {
      this.release();
      this.release = undefined;
    }
  }
}
