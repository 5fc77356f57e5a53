/** The five states of a node. Only RUNNING nodes receive traffic. */
export const NodeState = {
  /** Started, not ready yet: no traffic. */
  UP: 'UP',
  /** Serving: the only state that gets traffic. */
  RUNNING: 'RUNNING',
  /** Busy (a `@KableDoing` handler, overload): skipped by every balancer. */
  DOING_SOMETHING: 'DOING_SOMETHING',
  /** Draining or paused: no new traffic. */
  STOPPED: 'STOPPED',
  /** Gone, or not started. */
  DOWN: 'DOWN',
} as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

/** Every state, in declaration order. */
export const NODE_STATES: readonly NodeState[] = Object.values(NodeState);

// The transition table of the original kable, kept exactly: DOING_SOMETHING may repeat
// (a new reason), DOWN is left only through UP.
const TRANSITIONS: Readonly<Record<NodeState, readonly NodeState[]>> = {
  UP: ['RUNNING', 'DOING_SOMETHING', 'STOPPED', 'DOWN'],
  DOWN: ['UP'],
  RUNNING: ['DOING_SOMETHING', 'STOPPED', 'DOWN'],
  STOPPED: ['DOING_SOMETHING', 'RUNNING', 'DOWN'],
  DOING_SOMETHING: ['DOING_SOMETHING', 'RUNNING', 'STOPPED', 'DOWN'],
};

/** Whether the transition table allows a node to move from `from` to `to`. */
export function canTransition(from: NodeState, to: NodeState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Whether `value` is one of the five state names. */
export function isNodeState(value: unknown): value is NodeState {
  return typeof value === 'string' && (NODE_STATES as readonly string[]).includes(value);
}
