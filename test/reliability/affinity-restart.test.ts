import { afterEach, describe, expect, it } from '@jest/globals';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy, KableRecord } from '../../lib/index.js';
import { waitUntil } from '../support/events.js';
import { freePort } from '../support/free-port.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { ReplicaProcesses } from '../support/replica-processes.js';

// Not a multiple of 3: round robin over 3 replicas would give a key another replica each round.
const KEYS = Array.from({ length: 31 }, (_, i) => `customer-${i}`);

/** Replicas in processes of their own, on fixed ports: a key's replica is its address. */
describe('key affinity across a restart', () => {
  const processes = new ReplicaProcesses();
  let client: KableClientProxy | undefined;

  afterEach(async () => {
    await client?.close();
    processes.killAll();
  });

  it('a busy replica passes its keys on and gets them back; one SIGTERMed and restarted on the same port too', async () => {
    const discovery = loopbackDiscovery(100);
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    const start = (port: number) => processes.start({ discovery, port, leaveGrace: 150 });
    const children = ports.map(start);
    await Promise.all(children.map((child) => child.ready));
    client = new KableClientProxy({ host: '127.0.0.1', discovery, target: 'math' });
    const math = client;
    await math.whenServed('who', { count: 3, timeout: 20_000 });

    /** The port of the replica that answered each key, asked one after another. */
    const placement = async (): Promise<Map<string, number>> => {
      const placed = new Map<string, number>();
      for (const key of KEYS) {
        const iid = await firstValueFrom(math.send<string>('who', new KableRecord({}, { affinityKey: key })));
        placed.set(key, math.node.peer(iid)!.port);
      }
      return placed;
    };
    const before = await placement();
    expect(await placement()).toEqual(before);
    expect(new Set(before.values()).size).toBe(3);

    const serving = () => math.nodesFor('who').length;
    /** Only the keys whose replica is `away` moved, each off it; the others stayed. */
    const expectOnlyMovedFrom = (away: number, placed: Map<string, number>) => {
      for (const key of KEYS) {
        if (before.get(key) === away) expect(placed.get(key)).not.toBe(away);
        else expect(placed.get(key)).toBe(before.get(key));
      }
    };

    // Busy: a @KableDoing handler on the replica of customer-1 holds it DOING_SOMETHING until released.
    const busyPort = before.get(KEYS[1])!;
    const rebuild = firstValueFrom(math.send('rebuild', new KableRecord('index', { affinityKey: KEYS[1] })));
    await waitUntil(() => serving() === 2, [math.node], ['peer:state'], 10_000, 'the replica to be busy');
    expectOnlyMovedFrom(busyPort, await placement());
    children[ports.indexOf(busyPort)].send('release index');
    expect(await rebuild).toBe('rebuilt index');
    await waitUntil(() => serving() === 3, [math.node], ['peer:state'], 10_000, 'the replica to be back');
    expect(await placement()).toEqual(before);

    const victimPort = before.get(KEYS[0])!;
    const victim = children[ports.indexOf(victimPort)];
    victim.child.kill('SIGTERM');
    // Nest's shutdown hooks end the process with the signal again once the app has closed.
    expect(await victim.exited).toBe('SIGTERM');
    await waitUntil(
      () => serving() === 2,
      [math.node],
      ['peer:removed', 'peer:state'],
      10_000,
      'the replica to leave',
    );
    expectOnlyMovedFrom(victimPort, await placement());

    const again = start(victimPort);
    expect((await again.ready).port).toBe(victimPort);
    await math.whenServed('who', { count: 3, timeout: 20_000 });
    expect(await placement()).toEqual(before);
  }, 60_000);
});
