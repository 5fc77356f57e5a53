/** The five states of a node. Only RUNNING nodes receive traffic. */
export const NodeState = {
  UP: 'UP',
  RUNNING: 'RUNNING',
  DOING_SOMETHING: 'DOING_SOMETHING',
  STOPPED: 'STOPPED',
  DOWN: 'DOWN',
} as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

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

export function canTransition(from: NodeState, to: NodeState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isNodeState(value: unknown): value is NodeState {
  return typeof value === 'string' && (NODE_STATES as readonly string[]).includes(value);
}
