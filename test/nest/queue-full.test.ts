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
