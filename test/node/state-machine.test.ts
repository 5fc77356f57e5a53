import { describe, expect, it } from '@jest/globals';
import { KableStateError } from '../../lib/node/errors.js';
import { StateMachine } from '../../lib/node/state-machine.js';
import { NODE_STATES, type NodeState } from '../../lib/node/states.js';

// The table of the kable README, written out independently of lib/node/states.ts so a change there fails here.
const ALLOWED: Record<NodeState, NodeState[]> = {
  UP: ['RUNNING', 'DOING_SOMETHING', 'STOPPED', 'DOWN'],
  DOWN: ['UP'],
  RUNNING: ['DOING_SOMETHING', 'STOPPED', 'DOWN'],
  STOPPED: ['DOING_SOMETHING', 'RUNNING', 'DOWN'],
  DOING_SOMETHING: ['DOING_SOMETHING', 'RUNNING', 'STOPPED', 'DOWN'],
};

const cells = NODE_STATES.flatMap((from) =>
  NODE_STATES.map((to) => [from, to, ALLOWED[from].includes(to)] as const),
);

describe('state transition table', () => {
  it('has 25 cells', () => expect(cells).toHaveLength(25));

  it.each(cells)('%s -> %s allowed: %s', (from, to, allowed) => {
    const machine = new StateMachine(from);
    if (allowed) {
      const previous = machine.to(to, 'why');
      expect(previous.state).toBe(from);
      expect(machine.current).toMatchObject({ state: to, reason: 'why' });
    } else {
      let thrown: unknown;
      try {
        machine.to(to);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(KableStateError);
      expect(thrown).toMatchObject({ from, to, code: 'KABLE_STATE' });
      expect((thrown as Error).message).toContain(from);
      expect((thrown as Error).message).toContain(to);
      expect(machine.current.state).toBe(from);
    }
  });

  it('stamps each change with the time it happened', () => {
    let now = 1000;
    const machine = new StateMachine('DOWN', () => now);
    now = 2500;
    machine.to('UP');
    expect(machine.current.since).toBe(2500);
  });
});
