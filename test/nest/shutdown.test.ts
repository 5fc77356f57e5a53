import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { waitForEvent, waitUntil } from '../support/events.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';

// The graceful shutdown of docs/operations.md, step by step: STOPPED at once, requests in flight finish (up to
// drainTimeout), leaveGrace, DOWN announced, connections closed.
describe('graceful shutdown of a KableServer', () => {
  let bus: MemoryBus;
  const apps: INestMicroservice[] = [];
  const clients: KableClientProxy[] = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  async function setup(drainTimeout: number, leaveGrace: number) {
    bus = new MemoryBus();
    const server = new KableServer({
      id: 'math',
      host: '127.0.0.1',
      discovery: { transport: bus.transport(), advertiseInterval: 1000 },
      drainTimeout,
      leaveGrace,
    });
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
      strategy: server,
      logger: false,
    });
    await app.listen();
    apps.push(app);
    const client = new KableClientProxy({
      host: '127.0.0.1',
      target: 'math',
      discovery: { transport: bus.transport(), advertiseInterval: 1000 },
      retries: 0,
      pickTimeout: 200,
    });
    clients.push(client);
    await client.whenServed('rebuild');
    return { app, server, client, ledger: app.get(MathLedger) };
  }

  it('lets a request in flight finish, refuses new ones meanwhile, then announces DOWN', async () => {
    const { app, server, client, ledger } = await setup(10_000, 50);
    const removed = waitForEvent(
      client.node,
      'peer:removed',
      (p: PeerRecord, _reason: string) => p.iid === server.node.iid,
    );
    const gated = waitUntil(() => ledger.gates.has('a'), [ledger], ['changed'], 5000, 'the handler');
    const inFlight = firstValueFrom(client.send<string>('rebuild', 'a'));
    await gated;
    const stopped = waitForEvent(
      client.node,
      'peer:state',
      (p: PeerRecord) => p.iid === server.node.iid && p.state === 'STOPPED',
    );
    const closing = app.close();
    apps.splice(apps.indexOf(app), 1);
    await stopped;
    // STOPPED: a new request is not served here (no other replica: it finds no node).
    await expect(firstValueFrom(client.send('async', 1))).rejects.toMatchObject({ code: 'KABLE_NO_NODE' });
    ledger.release('a');
    expect(await inFlight).toBe('rebuilt a');
    await closing;
    // Then DOWN, announced: the client removes it at once, not after nodeTimeout.
    expect((await removed)[1]).toBe('unregister');
  });

  it('stops waiting for a request in flight after drainTimeout: the caller learns it was lost', async () => {
    const drainTimeout = 300;
    const { app, client, ledger } = await setup(drainTimeout, 50);
    const gated = waitUntil(() => ledger.gates.has('b'), [ledger], ['changed'], 5000, 'the handler');
    const inFlight = firstValueFrom(client.send<string>('rebuild', 'b')).catch((error: unknown) => error);
    await gated;
    const began = performance.now();
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    const took = performance.now() - began;
    // Waited the drain out, and not much longer (timers fire late on a loaded machine, never early).
    expect(took).toBeGreaterThanOrEqual(drainTimeout - 1);
    expect(took).toBeLessThan(drainTimeout + 2000);
    expect(await inFlight).toMatchObject({ code: 'KABLE_PEER_LOST' });
  });

  it("has untracked every connection once app.close() resolves, as Nest's TCP server has", async () => {
    // Nest's own TCP shutdown spec with the transport swapped: two callers connected (plain data-plane
    // connections: they do not follow discovery, so only the server's close ends them), then close.
    const { app, server } = await setup(1000, 10);
    const callers = [1, 2].map(() => new PeerConnection(server.node.host, server.node.port, {}));
    try {
      const asked = callers.map(
        (caller, i) =>
          new Promise((resolve, reject) =>
            caller.request('async', i + 1, undefined, {
              next: resolve,
              error: reject,
              complete: () => undefined,
            }),
          ),
      );
      expect(await Promise.all(asked)).toEqual([2, 4]);
      expect(server.node.stats()['dataPlane.openConnections']).toBe(3);
      await app.close();
      apps.splice(apps.indexOf(app), 1);
      expect(server.node.stats()['dataPlane.openConnections']).toBe(0);
    } finally {
      for (const caller of callers) caller.close();
    }
  });
});
