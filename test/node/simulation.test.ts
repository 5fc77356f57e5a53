import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { joinWindow } from '../../lib/node/join-answers.js';
import { KableNode } from '../../lib/node/kable-node.js';
import { DEFAULTS } from '../../lib/node/options.js';

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

describe(`joining a ${NODES}-node cluster, default timings, advert codec in the path (fake timers)`, () => {
  const bus = new MemoryBus({ codec: true });
  const nodes: KableNode[] = [];
  const options = { replica: true, host: '127.0.0.1' };
  // The newcomer's discovery socket: one transport, reused by every incarnation of a restarting node.
  const newcomerSocket = bus.transport();
  const newcomerPort = (newcomerSocket as unknown as { source: { port: number } }).source.port;
  const window = joinWindow(NODES + 1, DEFAULTS.advertiseInterval);
  const answers = () => nodes.map((node) => node.stats().joinAnswers);
  const since = (before: number[]) => answers().map((count, i) => count - before[i]);

  beforeAll(async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    for (let i = 0; i < NODES; i++) nodes.push(new KableNode(`service-${i % 100}`, options, bus.transport()));
    await Promise.all(nodes.map((node) => node.up()));
    await jest.advanceTimersByTimeAsync(1000);
    for (const node of nodes) expect(node.peers()).toHaveLength(NODES - 1);
  }, 120_000);

  afterAll(async () => {
    const downs = Promise.all(nodes.map((node) => node.down()));
    await jest.advanceTimersByTimeAsync(100);
    await downs;
    jest.useRealTimers();
  });

  it('one join costs each peer at most one answer, and the newcomer hears all of them through a bounded receive buffer within the window', async () => {
    // Linux's default receive buffer. The same answers sent at once would need four times as much.
    bus.receiveBuffer = 212_992;
    const before = answers();
    const newcomer = new KableNode('caller', options, newcomerSocket);
    let knewAllAfter = Number.NaN;
    const joinedAt = Date.now();
    newcomer.on('peer:added', () => {
      if (newcomer.runningNodes().length === NODES + 1) knewAllAfter = Date.now() - joinedAt;
    });
    await newcomer.up();
    await jest.advanceTimersByTimeAsync(Math.ceil(window) + 10);
    expect(newcomer.stats().overruns).toBe(0);
    expect(newcomer.peers()).toHaveLength(NODES);
    expect(knewAllAfter).toBeLessThanOrEqual(Math.ceil(window) + 1);
    const answered = since(before);
    expect(Math.max(...answered)).toBeLessThanOrEqual(1);
    const down = newcomer.down();
    await jest.advanceTimersByTimeAsync(50);
    await down;
    bus.receiveBuffer = undefined;
  }, 60_000);

  it('a node restarting 20 times in 10 s gets at most one answer per join from each peer, and restarting as fast as it can at most four a second', async () => {
    // Only the newcomer's traffic and what reaches it: the peers' answers to everyone also reach each
    // other on a real network, but that does not change what is counted here, and keeps the run short.
    bus.filter = (_advert, from, to) => from.port === newcomerPort || to.port === newcomerPort;
    const restartLoop = async (period: number, seconds: number) => {
      const before = answers();
      const end = Date.now() + seconds * 1000;
      let restarts = 0;
      while (Date.now() < end) {
        const node = new KableNode('restarting', options, newcomerSocket);
        await node.up();
        restarts++;
        await jest.advanceTimersByTimeAsync(period - 40);
        const down = node.down();
        await jest.advanceTimersByTimeAsync(40);
        await down;
      }
      await jest.advanceTimersByTimeAsync(Math.ceil(window) + 250);
      return { restarts, most: Math.max(...since(before)) };
    };
    const slow = await restartLoop(500, 10);
    expect(slow.restarts).toBe(20);
    // One answer per join at most, whatever the window.
    expect(slow.most).toBeLessThanOrEqual(20);
    // Three seconds of it are enough to show the pace (and keep the run short).
    const fast = await restartLoop(50, 3);
    expect(fast.restarts).toBe(60);
    // A join answer at most every 250 ms (half a sweep with the default advertiseInterval), plus one.
    expect(fast.most).toBeLessThanOrEqual(3000 / 250 + 1);
    bus.filter = undefined;
  }, 120_000);
});
