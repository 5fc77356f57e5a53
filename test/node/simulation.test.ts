import { afterAll, describe, expect, it } from '@jest/globals';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableNode } from '../../lib/node/kable-node.js';

const NODES = 1000;
const INTERVAL = 10_000;

describe('simulation on the in-memory bus', () => {
  const bus = new MemoryBus();
  const nodes: KableNode[] = [];
  afterAll(() => Promise.all(nodes.map((node) => node.down())));

  it(`${NODES} nodes all learn all within two advert intervals`, async () => {
    // 100 services of 10 replicas: realistic rotations as well as a full registry.
    for (let i = 0; i < NODES; i++) {
      nodes.push(
        new KableNode(
          `service-${i % 100}`,
          { replica: true, host: '127.0.0.1', discovery: { advertiseInterval: INTERVAL } },
          bus.transport(),
        ),
      );
    }
    let complete = 0;
    const converged = new Promise<void>((resolve) => {
      for (const node of nodes) {
        let known = 0;
        node.on('peer:added', () => {
          if (++known === NODES - 1 && ++complete === NODES) resolve();
        });
      }
    });
    await Promise.all(nodes.map((node) => node.up()));
    await converged;
    // "Within two intervals" counted in adverts, not wall time: no node had to send more than two.
    const mostSent = Math.max(...nodes.map((node) => node.stats().advertsSent));
    expect(mostSent).toBeLessThanOrEqual(2);
    for (const node of nodes) expect(node.peers()).toHaveLength(NODES - 1);
    expect(nodes[0].running('service-7')).toHaveLength(10);
  }, 60_000);
});
