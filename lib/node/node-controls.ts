import type { NodeStatus } from './state-machine.js';

/**
 * What the node's helpers (the busy state, the overload monitor, the signal handler) see of a node. They
 * take this instead of KableNode so the core's files import downwards only: kable-node.ts imports them,
 * never the other way round.
 */
export interface NodeControls {
  readonly state: NodeStatus;
  start(reason?: string): void;
  doing(reason?: string): void;
  down(reason?: string): Promise<void>;
}
