import type { NodeControls } from './node-controls.js';

const BUSY_STATES = Symbol.for('nestjs-kable:busy-states');

/**
 * Shares DOING_SOMETHING among everything that may make a node busy (running `@KableDoing` handlers,
 * the overload monitor): the node is busy while at least one hold is open and returns to RUNNING when
 * the last is released, unless something else (a stop, a shutdown) changed its state meanwhile, which
 * then wins.
 */
export class BusyState {
  private holds = 0;
  /** True while the node is DOING_SOMETHING because of us, so we never start a node someone stopped. */
  private ours = false;

  constructor(private readonly node: NodeControls) {}

  get active(): number {
    return this.holds;
  }

  /** Opens a hold; the returned function releases it (calling it again does nothing). */
  hold(reason: string): () => void {
    this.holds++;
    const state = this.node.state.state;
    if (state === 'RUNNING') {
      this.node.doing(reason);
      this.ours = true;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      if (this.holds > 0) return;
      if (this.ours && this.node.state.state === 'DOING_SOMETHING') this.node.start();
      this.ours = false;
    };
  }
}

// Kept on globalThis under a registered symbol: when an app loads both the ESM and the CommonJS build of
// the package, handlers decorated through one copy and a node made by the other still share one count.
const registry = globalThis as { [BUSY_STATES]?: WeakMap<NodeControls, BusyState> };
const byNode = (registry[BUSY_STATES] ??= new WeakMap<NodeControls, BusyState>());

/** The one BusyState of a node, so handlers and the overload monitor count together. */
export function busyStateOf(node: NodeControls): BusyState {
  let busy = byNode.get(node);
  if (busy === undefined) {
    busy = new BusyState(node);
    byNode.set(node, busy);
  }
  return busy;
}
