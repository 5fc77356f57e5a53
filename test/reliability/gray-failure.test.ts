import { afterEach, describe, expect, it } from '@jest/globals';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { DEFAULTS } from '../../lib/node/options.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { ReplicaProcesses } from '../support/replica-processes.js';

// Gray failures: a replica that keeps its TCP connections open but stops answering (SIGSTOP, a blocked
// event loop). Default discovery timings (advertiseInterval 3000 ms, eviction after 10.5 s), so only the
// data plane's own liveness probe and the load-aware balancer can keep callers away from it in time.

const TIMEOUT = 5000;
const LANES = 20;
const INTERVAL = DEFAULTS.advertiseInterval;

interface Outcome {
  start: number;
  end: number;
  iid?: string;
  code?: string;
}

/** A closed loop of `LANES` callers sending 'who' (answered with the serving replica's instance id). */
function closedLoop(client: KableClientProxy) {
  const outcomes: Outcome[] = [];
  let running = true;
  const lane = async () => {
    while (running) {
      const start = Date.now();
      try {
        const iid = await firstValueFrom(client.send<string>('who', {}));
        outcomes.push({ start, end: Date.now(), iid });
      } catch (error) {
        outcomes.push({ start, end: Date.now(), code: (error as { code?: string }).code ?? 'NO_CODE' });
      }
    }
  };
  const lanes = Array.from({ length: LANES }, lane);
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(lanes);
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the time of the first reply from `iid` to a request started at or after `since`. */
function servedAgain(outcomes: Outcome[], iid: string, since: number, within: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + within;
    const check = () => {
      const found = outcomes.find((o) => o.iid === iid && o.start >= since);
      if (found !== undefined) return resolve(found.end);
      if (Date.now() > deadline) return reject(new Error(`${iid} served nothing within ${within} ms`));
      setTimeout(check, 5);
    };
    check();
  });
}

describe('a replica that stops answering (default timings)', () => {
  const processes = new ReplicaProcesses();
  const clients: KableClientProxy[] = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    processes.killAll();
  });

  async function cluster() {
    const discovery = loopbackDiscovery(INTERVAL);
    const replicas = [0, 1, 2].map(() => processes.start({ discovery }));
    const ready = await Promise.all(replicas.map((r) => r.ready));
    const client = new KableClientProxy({ host: '127.0.0.1', discovery, target: 'math', timeout: TIMEOUT });
    clients.push(client);
    await client.whenServed('who', { count: 3, timeout: 20_000 });
    return { discovery, replicas, victim: ready[0].iid as string, client };
  }

  /**
   * Runs the closed loop, calls `stall()` (which resolves when the stall is over), then checks what the
   * issue asks: nothing started more than 1 s into the stall went to the stalled replica, throughput
   * during the stall is at least half of what it was before, every request succeeded or failed with a
   * code within its timeout, and the replica serves again within one advertiseInterval.
   */
  async function throughStall(
    setup: Awaited<ReturnType<typeof cluster>>,
    stall: () => Promise<{ from: number; to: number }>,
  ) {
    const { client, victim } = setup;
    const loop = closedLoop(client);
    await sleep(4000); // warm: the "before" window is the last 2 s of it
    // What the caller shows 1.5 s into the stall: the replica as unresponsive, in stats() too.
    const view = sleep(1500).then(() => ({
      unresponsive: client.unresponsiveNodes().map((peer) => peer.iid),
      stat: client.unwrap().stats()['client.unresponsivePeers'],
    }));
    const { from, to } = await stall();
    const back = await servedAgain(loop.outcomes, victim, to, INTERVAL);
    await sleep(500);
    await loop.stop();
    const outcomes = loop.outcomes;

    const lateToVictim = outcomes.filter((o) => o.start > from + 1000 && o.start < to && o.iid === victim);
    // A request that timed out went to the stalled replica (the others answer in milliseconds).
    const lateTimeouts = outcomes.filter(
      (o) => o.start > from + 1000 && o.start < to && o.code !== undefined,
    );
    const okIn = (a: number, b: number) => outcomes.filter((o) => o.iid && o.end >= a && o.end < b).length;
    const before = okIn(from - 2000, from) / 2000;
    const during = okIn(from, to) / (to - from);
    const codes = new Set(outcomes.filter((o) => o.code !== undefined).map((o) => o.code));
    const slowest = outcomes.reduce((most, o) => Math.max(most, o.end - o.start), 0);
    const summary = {
      requests: outcomes.length,
      lateToVictim: lateToVictim.length,
      lateTimeouts: lateTimeouts.length,
      throughputBefore: Math.round(before * 1000),
      throughputDuring: Math.round(during * 1000),
      codes: [...codes],
      slowest,
      servedAgainAfter: back - to,
      unresponsiveLapses: client.unwrap().stats()['client.unresponsiveLapses'],
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    expect(lateToVictim).toEqual([]);
    expect(lateTimeouts).toEqual([]);
    expect(during).toBeGreaterThanOrEqual(0.5 * before);
    expect([...codes].filter((code) => code !== 'KABLE_TIMEOUT')).toEqual([]);
    // "Within its timeout": the client's timer plus what a loaded machine adds to any timer.
    // A retried or doubled wait would show about 2 × TIMEOUT.
    expect(slowest).toBeLessThan(TIMEOUT + 1000);
    expect(back - to).toBeLessThanOrEqual(INTERVAL);
    expect(summary.unresponsiveLapses).toBeGreaterThanOrEqual(1);
    expect(await view).toEqual({ unresponsive: [victim], stat: 1 });
    expect(client.unresponsiveNodes()).toEqual([]);
  }

  it('SIGSTOP for 8 s: traffic leaves the frozen replica within a second and returns after SIGCONT', async () => {
    const setup = await cluster();
    await throughStall(setup, async () => {
      const from = Date.now();
      setup.replicas[0].child.kill('SIGSTOP');
      await sleep(8000);
      setup.replicas[0].child.kill('SIGCONT');
      return { from, to: Date.now() };
    });
  }, 60_000);

  it('a 5 s synchronous loop in a handler: the same, and the replica serves again once it returns', async () => {
    const setup = await cluster();
    const spinner = new KableClientProxy({
      host: '127.0.0.1',
      discovery: setup.discovery,
      target: 'math',
    });
    clients.push(spinner);
    await spinner.whenServed('spin', { count: 3, timeout: 20_000 });
    await throughStall(setup, async () => {
      const from = Date.now();
      // Round robin over three replicas: one of three calls lands on the victim, which spins.
      const spins = await Promise.all(
        [0, 1, 2].map(() => firstValueFrom(spinner.send<boolean>('spin', { iid: setup.victim, ms: 5000 }))),
      );
      expect(spins.filter(Boolean)).toHaveLength(1);
      return { from, to: Date.now() };
    });
  }, 60_000);
});
