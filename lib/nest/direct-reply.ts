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
    // A throw from settle (a subscribe that throws, say) would otherwise be an unhandled rejection,
    // which ends the process: it is the handler's failure, answered as one.
    result
      .then(settle, (error: unknown) => replyError(reply, error))
      .catch((error: unknown) => replyError(reply, error));
  } else settle(result);
  return () => {
    cancelled = true;
    unsubscribe?.();
  };
}

function replyWithStream(stream: Observable<unknown>, reply: ReplyChannel): () => void {
  // The latest value is held until the end of the tick, so that it can carry "last" if the stream
  // completes meanwhile (one frame instead of two). A flag, not a box: nothing is allocated per value.
  let holding = false;
  let held: unknown;
  let flushScheduled = false;
  const sendHeld = (last: boolean): void => {
    if (!holding) return;
    const value = held;
    holding = false;
    held = undefined;
    reply.next(value, last);
  };
  const flushHeld = (): void => {
    flushScheduled = false;
    sendHeld(false);
  };
  const subscription = stream.subscribe({
    next: (value) => {
      sendHeld(false);
      held = value;
      holding = true;
      if (!flushScheduled) {
        flushScheduled = true;
        process.nextTick(flushHeld);
      }
    },
    error: (error: unknown) => {
      sendHeld(false);
      replyError(reply, error);
    },
    complete: () => {
      if (holding) sendHeld(true);
      else reply.complete();
    },
  });
  return () => subscription.unsubscribe();
}
