import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { firstValueFrom, type Subscription } from 'rxjs';
import type { KableClientProxy } from '../../lib/nest/kable.client.js';
import { waitUntil } from '../support/events.js';
import { InProcessCluster, serverOf } from './fixtures/in-process.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';

// A client's own queue toward a replica being full is back-pressure, not a fault of the replica: real
// Nest apps and real TCP in one process.
const cluster = new InProcessCluster();
afterEach(() => cluster.close());

const KiB = 1024;

/** Nodes the client skips because they refused or could not be reached. */
function avoidedBy(client: KableClientProxy): string[] {
  return (client as unknown as { router: { avoidedNodes(): string[] } }).router.avoidedNodes();
}

describe("a full queue toward the client's only replica", () => {
  it('makes requests wait for room and then succeed; the replica is not avoided', async () => {
    const app = await cluster.service(MathModule, 'math');
    // A short pickTimeout: a replica wrongly avoided fails the requests with KABLE_NO_NODE within it.
    const client = cluster.client({ target: 'math', maxQueuedBytes: 1024 * KiB, pickTimeout: 200 });
    await client.whenServed('who');
    const blob = Buffer.alloc(300 * KiB, 7);
    // 24 requests of 300 KiB at once: three fit the 1 MiB queue, the others wait for the socket to take them.
    const served = await Promise.all(
      Array.from({ length: 24 }, () => firstValueFrom(client.send<string>('who', { blob }))),
    );
    expect(served).toEqual(Array.from({ length: 24 }, () => serverOf(app).node.iid));
    expect(avoidedBy(client)).toEqual([]);
    expect(client.nodesFor('who')).toHaveLength(1);
    const stats = client.node.stats();
    expect(stats['client.roomWaits']).toBeGreaterThanOrEqual(20);
    expect(stats['client.waitingForRoom']).toBe(0);
  });

  it('leaves no trace when unsubscribed while it waits for room: never sent, the next one goes', async () => {
    const app = await cluster.service(MathModule, 'math');
    const ledger = app.get(MathLedger);
    const client = cluster.client({ target: 'math', maxQueuedBytes: 1024 * KiB });
    await client.whenServed('who');
    const blob = Buffer.alloc(600 * KiB, 7);
    // In one tick: the first fits the 1 MiB queue, the other two wait; the second is given up.
    const first = firstValueFrom(client.send<string>('who', { blob }));
    const given = client.send<string>('who', { blob }).subscribe({ error: () => undefined });
    const third = firstValueFrom(client.send<string>('who', { blob }));
    expect(client.node.stats()['client.waitingForRoom']).toBe(2);
    given.unsubscribe();
    expect(client.node.stats()['client.waitingForRoom']).toBe(1);
    await Promise.all([first, third]);
    expect(ledger.served).toBe(2);
    expect(serverOf(app).node.stats()['dataPlane.cancelled']).toBe(0);
    expect(client.node.stats()).toMatchObject({ 'client.pending': 0, 'client.waitingForRoom': 0 });
  });
});

describe('requests that time out while they wait for room in full queues', () => {
  it('do not count toward ejecting the replicas: they never reached them', async () => {
    await Promise.all([0, 1, 2].map(() => cluster.service(MathModule, 'math')));
    // Every queue full (4 MiB each) and a 100 ms timeout: most requests end waiting for room, having never
    // left this caller. Left out by default, a replica would be ejected after 5 failures in a row. Only
    // the few already handed to a socket (its buffers hold a frame or two of 4 MiB) may count.
    const client = cluster.client({ target: 'math', maxQueuedBytes: 4096 * KiB, timeout: 100 });
    await client.whenServed('who', { count: 3 });
    const blob = Buffer.alloc(4096 * KiB - 4 * KiB, 7);
    const outcomes = await Promise.all(
      Array.from({ length: 100 }, () =>
        firstValueFrom(client.send<string>('who', { blob })).then(
          () => 'served',
          (error: { code?: string }) => error.code,
        ),
      ),
    );
    // 400 MiB within 100 ms is more than one process moves through itself: many waited until the end.
    expect(outcomes.filter((outcome) => outcome === 'KABLE_TIMEOUT').length).toBeGreaterThanOrEqual(30);
    expect(client.excludedReplicas()).toEqual([]);
    expect(client.node.stats()['client.ejections']).toBe(0);
    expect(client.node.stats()['client.waitingForRoom']).toBe(0);
  });
});

describe('a request its first replica refuses at once', () => {
  it('is cancelled on the replica that took it: the stream handler there is unsubscribed', async () => {
    const [first, second] = await Promise.all([
      cluster.service(MathModule, 'math'),
      cluster.service(MathModule, 'math'),
    ]);
    const ledgers = new Map<string, { app: INestMicroservice; ledger: MathLedger }>(
      [first, second].map((app) => [serverOf(app).node.iid, { app, ledger: app.get(MathLedger) }]),
    );
    // One request pending per connection at most: a second one to the same replica is refused at once.
    const client = cluster.client({ target: 'math', maxPending: 1 });
    await client.whenServed('endless', { count: 2 });
    const [a, b] = client.nodesFor('endless').map((peer) => ledgers.get(peer.iid)!);
    // A holds a request (the rotation's first pick); B answers one, so the rotation is back at A.
    const held = client.send<string>('hold', 'h').subscribe({ error: () => undefined });
    await waitUntil(() => a.ledger.gates.has('h'), [a.ledger], ['changed'], 5000, 'A to hold a request');
    await firstValueFrom(client.send<string>('who', {}));
    // The stream goes to A, which refuses it at once (maxPending), and is retried on B.
    let stream: Subscription | undefined;
    await new Promise((resolve, reject) => {
      stream = client.send<number>('endless', {}).subscribe({ next: resolve, error: reject });
    });
    expect(a.ledger.cancelled + b.ledger.cancelled).toBe(0);
    stream!.unsubscribe();
    // The CANCEL reaches B: its handler is unsubscribed. Before, the cancel kept was A's refused no-op.
    await waitUntil(() => b.ledger.cancelled === 1, [b.ledger], ['changed'], 5000, "B's stream cancelled");
    expect(serverOf(b.app).node.stats()['dataPlane.cancelled']).toBe(1);
    // And A, which refused for this caller's own back-pressure, stays in the rotation.
    expect(avoidedBy(client)).toEqual([]);
    a.ledger.release('h');
    held.unsubscribe();
  });
});

describe('a replica that refused a request', () => {
  it('is skipped for avoidFor (the client nodeTimeout), then serves again with no advert changing', async () => {
    // One request in flight per connection at most: a second one is answered KABLE_REFUSED.
    const app = await cluster.service(MathModule, 'math', { maxInFlightPerConnection: 1 });
    const ledger = app.get(MathLedger);
    const client = cluster.client({
      target: 'math',
      discovery: { ...cluster.discovery(), nodeTimeout: 600 },
    });
    await client.whenServed('who');
    const held = client.send<string>('hold', 'h').subscribe({ error: () => undefined });
    await waitUntil(
      () => ledger.gates.has('h'),
      [ledger],
      ['changed'],
      5000,
      'the replica to hold a request',
    );
    const router = (client as unknown as { router: { avoid(iid: string, forMs: number): void } }).router;
    const avoid = router.avoid.bind(router);
    const avoided = new Promise<number>((resolve) => {
      router.avoid = (iid, forMs) => {
        avoid(iid, forMs);
        resolve(forMs);
      };
    });
    const who = firstValueFrom(client.send<string>('who', {}));
    // Refused, so skipped: the retry waits for a node while the replica is avoided.
    expect(await avoided).toBe(600);
    const refusedAt = performance.now();
    expect(avoidedBy(client)).toEqual([serverOf(app).node.iid]);
    ledger.release('h');
    // The router's one timer ends the avoidance and wakes the waiting request: served, nothing avoided.
    expect(await who).toBe(serverOf(app).node.iid);
    expect(performance.now() - refusedAt).toBeGreaterThanOrEqual(580);
    expect(avoidedBy(client)).toEqual([]);
    expect(client.nodesFor('who')).toHaveLength(1);
    held.unsubscribe();
  });
});
