import { isObservable, type Observable } from 'rxjs';
import type { ReplyChannel } from '../data-plane/data-plane-server.js';
import { replyError } from './error-reply.js';

/**
 * Answers one request straight from what Nest's handler returned, without Nest's generic `send`
 * (an rxjs pipeline and a queue per request). Used when no processing hooks are set, so nothing
 * observes the difference; the replies are the same:
 * - a value (or a promise of one) is one final NEXT frame; `undefined` completes without a value;
 * - a stream sends each value, and a value followed by completion in the same tick goes as one final
 *   frame, as Nest's `send` merges them;
 * - a rejection or a stream error is answered by `replyError`, as on the hooks path.
 * Returns a function that cancels the work (unsubscribes the stream).
 */
export function replyDirectly(result: unknown, reply: ReplyChannel): () => void {
  let cancelled = false;
  let unsubscribe: (() => void) | undefined;
  const settle = (value: unknown): void => {
    // The channel ignores whatever comes after it finished; this only keeps a cancelled stream unsubscribed.
    if (cancelled) return;
    if (isObservable(value)) unsubscribe = replyWithStream(value, reply);
    else if (value === undefined) reply.complete();
    else reply.next(value, true);
  };
  if (result instanceof Promise) {
    result.then(settle, (error: unknown) => replyError(reply, error));
  } else settle(result);
  return () => {
    cancelled = true;
    unsubscribe?.();
  };
}

function replyWithStream(stream: Observable<unknown>, reply: ReplyChannel): () => void {
  // The latest value is held until the end of the tick, so that it can carry "last" if the stream
  // completes meanwhile (one frame instead of two).
  let held: { value: unknown } | undefined;
  let flushScheduled = false;
  const sendHeld = (last: boolean): void => {
    if (held === undefined) return;
    const { value } = held;
    held = undefined;
    reply.next(value, last);
  };
  const subscription = stream.subscribe({
    next: (value) => {
      sendHeld(false);
      held = { value };
      if (!flushScheduled) {
        flushScheduled = true;
        process.nextTick(() => {
          flushScheduled = false;
          sendHeld(false);
        });
      }
    },
    error: (error: unknown) => {
      sendHeld(false);
      replyError(reply, error);
    },
    complete: () => {
      if (held !== undefined) sendHeld(true);
      else reply.complete();
    },
  });
  return () => subscription.unsubscribe();
}
