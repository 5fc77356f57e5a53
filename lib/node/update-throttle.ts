/**
 * Coalesces state updates: the first change goes out at once, later ones within the same gap are
 * merged into one send at the end of it. The sender reads the state when it fires, so the last
 * state always goes out, and a flapping node sends at most `perSecond` updates a second.
 */
export class UpdateThrottle {
  private lastSent = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private readonly gap: number;

  constructor(
    perSecond: number,
    private readonly send: () => void,
  ) {
    this.gap = 1000 / perSecond;
  }

  request(): void {
    if (this.timer !== undefined) return;
    const wait = this.lastSent + this.gap - performance.now();
    if (wait <= 0) {
      this.fire();
      return;
    }
    // Not unref'd: the coalesced last state must go out even if nothing else keeps the process alive.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fire();
    }, wait);
  }

  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire(): void {
    this.lastSent = performance.now();
    this.send();
  }
}
