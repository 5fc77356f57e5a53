import type { EventEmitter } from 'node:events';

/**
 * Resolves with the arguments of the first `event` whose arguments satisfy `accept`. Rejects after
 * `timeout` ms naming what was awaited, so a broken feature fails fast instead of hanging the suite.
 */
export function waitForEvent<A extends unknown[]>(
  emitter: EventEmitter<any>,
  event: string,
  accept: (...args: A) => boolean = () => true,
  timeout = 10_000,
): Promise<A> {
  return new Promise((resolve, reject) => {
    const listener = (...args: unknown[]) => {
      if (!accept(...(args as A))) return;
      cleanup();
      resolve(args as A);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Timed out after ${timeout} ms waiting for "${event}".`));
    }, timeout);
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, listener);
    };
    emitter.on(event, listener);
  });
}

/** Re-checks `condition` every time one of `emitters` emits one of `events`, until true or timeout. */
export function waitUntil(
  condition: () => boolean,
  emitters: Array<EventEmitter<any>>,
  events: string[],
  timeout = 10_000,
  what = 'a condition',
): Promise<void> {
  if (condition()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!condition()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Timed out after ${timeout} ms waiting for ${what}.`));
    }, timeout);
    const cleanup = () => {
      clearTimeout(timer);
      for (const emitter of emitters) for (const event of events) emitter.off(event, check);
    };
    for (const emitter of emitters) for (const event of events) emitter.on(event, check);
  });
}

/** Re-checks `condition` every 10 ms until true, failing after `timeout` ms (for what emits no event). */
export async function eventually(condition: () => boolean, what: string, timeout = 2000): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeout} ms waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
