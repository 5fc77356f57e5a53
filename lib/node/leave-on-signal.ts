import type { NodeControls } from './node-controls.js';

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
/** Longest a dying process waits for its nodes' DOWN adverts to leave. */
const ANNOUNCE_BOUND_MS = 1000;

const live = new Set<NodeControls>();
let listening = false;

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
    [...live].map((node) => node.down(`received ${signal}`).catch(() => undefined)),
  );
  const bound = new Promise((resolve) => setTimeout(resolve, ANNOUNCE_BOUND_MS).unref());
  void Promise.race([leaving, bound]).then(() => process.kill(process.pid, signal));
}

function stopListening(): void {
  if (!listening) return;
  listening = false;
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

export function watchSignals(node: NodeControls): void {
  live.add(node);
  if (listening) return;
  listening = true;
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

export function unwatchSignals(node: NodeControls): void {
  live.delete(node);
  if (live.size === 0) stopListening();
}
