import { KableError, KablePickTimeoutError } from './errors.js';

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * pick() calls waiting for a service id that has no RUNNING node yet. Each waiter is bounded by a
 * timeout and may be aborted; either way it is removed at once. The total is capped so a burst of
 * calls for a service that never comes cannot grow memory without limit.
 */
export class PickWaiters<T> {
  private readonly waiting = new Map<string, Set<Waiter<T>>>();
  private count = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.count;
  }

  wait(id: string, timeout: number, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.count >= this.max) {
      return Promise.reject(
        new KableError(
          'KABLE_TOO_MANY_WAITERS',
          `${this.max} pick() calls are already waiting; raise maxPickWaiters or wait for "${id}" to come up.`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve,
        reject,
        timer: setTimeout(() => this.settle(id, waiter, new KablePickTimeoutError(id, timeout)), timeout),
        signal,
      };
      if (signal !== undefined) {
        waiter.onAbort = () => this.settle(id, waiter, abortError(signal));
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      let set = this.waiting.get(id);
      if (set === undefined) {
        set = new Set();
        this.waiting.set(id, set);
      }
      set.add(waiter);
      this.count++;
    });
  }

  has(id: string): boolean {
    return this.waiting.has(id);
  }

  /** Serves waiters of `id` in arrival order while `next` yields a value. */
  serve(id: string, next: () => T | undefined): void {
    const set = this.waiting.get(id);
    if (set === undefined) return;
    for (const waiter of set) {
      const value = next();
      if (value === undefined) return;
      this.detach(id, waiter);
      waiter.resolve(value);
    }
  }

  rejectAll(error: Error): void {
    for (const [id, set] of this.waiting) {
      for (const waiter of set) this.settle(id, waiter, error);
    }
  }

  private settle(id: string, waiter: Waiter<T>, error: unknown): void {
    if (!this.detach(id, waiter)) return;
    waiter.reject(error);
  }

  private detach(id: string, waiter: Waiter<T>): boolean {
    const set = this.waiting.get(id);
    if (set === undefined || !set.delete(waiter)) return false;
    if (set.size === 0) this.waiting.delete(id);
    this.count--;
    clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    return true;
  }
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The pick was aborted.', 'AbortError');
}
