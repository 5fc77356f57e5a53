import type { NodeControls } from './node-controls.js';

const WATCH = Symbol.for('nestjs-kable:signal-watch');

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
/** Longest a dying process waits for its nodes' DOWN adverts to leave. */
const ANNOUNCE_BOUND_MS = 1000;

// One registry per process, not per copy of the package: an app that loads both the ESM and the
// CommonJS build must still get one listener per signal, or each copy would see the other's listener,
// take it for the app's own and stand aside, and the signal would end nothing.
interface SignalWatch {
  live: Set<NodeControls>;
  listening: boolean;
  listener: (signal: NodeJS.Signals) => void;
}
const shared = globalThis as { [WATCH]?: SignalWatch };
const watch = (shared[WATCH] ??= { live: new Set(), listening: false, listener: onSignal });

/**
 * A process killed by SIGINT/SIGTERM without Nest's shutdown hooks still tells its cluster it left,
 * instead of lingering until nodeTimeout. One listener per signal for the whole process (not per node),
 * and only when nobody else listens: then we announce DOWN and re-raise the signal so the process ends
 * as it would have. When the app handles the signal itself (`enableShutdownHooks`), we stay out of it.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  stopListening();
  const leaving = Promise.all(
    [...watch.live].map((node) => node.down(`received ${signal}`).catch(() => undefined)),
  );
  const bound = new Promise((resolve) => setTimeout(resolve, ANNOUNCE_BOUND_MS).unref());
  void Promise.race([leaving, bound]).then(() => process.kill(process.pid, signal));
}

function stopListening(): void {
  if (!watch.listening) return;
  watch.listening = false;
  for (const signal of SIGNALS) process.off(signal, watch.listener);
}

export function watchSignals(node: NodeControls): void {
  watch.live.add(node);
  if (watch.listening) return;
  watch.listening = true;
  for (const signal of SIGNALS) process.on(signal, watch.listener);
}

export function unwatchSignals(node: NodeControls): void {
  watch.live.delete(node);
  if (watch.live.size === 0) stopListening();
}
