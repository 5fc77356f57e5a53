import { afterEach, describe, expect, it } from '@jest/globals';
import { InvalidMessageException } from '@nestjs/microservices/errors/invalid-message.exception.js';
import { once, type EventEmitter } from 'node:events';
import { firstValueFrom, lastValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { NO_MESSAGE_HANDLER } from '../../lib/nest/kable.constants.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { waitUntil } from '../support/events.js';
import { InProcessCluster, serverOf } from './fixtures/in-process.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';

const cluster = new InProcessCluster();
afterEach(() => cluster.close());

/** The client's pattern router, to count requests waiting for a node. */
function waitingOf(client: KableClientProxy): number {
  return (client as unknown as { router: { waiting: number } }).router.waiting;
}

/** The client's one deadline list: requests listed, and whether its timer is set. */
function deadlinesOf(client: KableClientProxy): { size: number; armed: boolean } {
  const { size, armed } = (client as unknown as { deadlines: { size: number; armed: boolean } }).deadlines;
  return { size, armed };
}

function statsOf(app: Parameters<typeof serverOf>[0]): Record<string, number> {
  return serverOf(app).node.stats();
}

describe('a pattern no node serves', () => {
  it('fails with KABLE_NO_NODE naming the pattern and the known services when timeout ends the wait', async () => {
    await cluster.service(MathModule, 'math');
    const proxy = cluster.client({ pickTimeout: 10_000, timeout: 300 });
    await proxy.whenServed('who');
    const started = Date.now();
    await expect(firstValueFrom(proxy.send('nobody-serves-this', 1))).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message:
        'No RUNNING node handles pattern "nobody-serves-this" (waited 300 ms, option: timeout). ' +
        'Known services: math (1 RUNNING).',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(295);
    expect(waitingOf(proxy)).toBe(0);
  });

  it('fails with KABLE_NO_NODE when pickTimeout ends the wait, naming services in every state', async () => {
    const [, busy] = await Promise.all([
      cluster.service(MathModule, 'math'),
      cluster.service(MathModule, 'orders'),
    ]);
    serverOf(busy).node.stop('maintenance');
    const proxy = cluster.client({ pickTimeout: 200, timeout: 5000 });
    await proxy.whenServed('who');
    await waitUntil(
      () => proxy.node.peers().some((peer) => peer.id === 'orders' && peer.state === 'STOPPED'),
      [proxy.node],
      ['peer:state', 'peer:added'],
      5000,
      'the client to see orders STOPPED',
    );
    await expect(firstValueFrom(proxy.send({ cmd: 'nobody' }, 1))).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message: expect.stringMatching(
        /^No RUNNING node handles pattern "\{"cmd":"nobody"\}" \(waited 200 ms, option: pickTimeout\)\. Known services: math \(1 RUNNING\), orders \(1 STOPPED\)\.$/,
      ),
    });
  });

  it('names the target service when the client has one and it is not there', async () => {
    const proxy = cluster.client({ target: 'math', pickTimeout: 5000, timeout: 150 });
    await expect(firstValueFrom(proxy.send('who', 1))).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message:
        'No RUNNING node of service "math" handles pattern "who" (waited 150 ms, option: timeout). Known services: none.',
    });
  });
});

describe('bad input at the API', () => {
  it("raises Nest's own InvalidMessageException for a null or undefined pattern or data", async () => {
    const proxy = cluster.client();
    for (const [pattern, data] of [
      [null, 1],
      [undefined, 1],
      ['sum', null],
      ['sum', undefined],
    ] as const) {
      await expect(firstValueFrom(proxy.send(pattern, data))).rejects.toBeInstanceOf(InvalidMessageException);
      await expect(lastValueFrom(proxy.emit(pattern, data))).rejects.toBeInstanceOf(InvalidMessageException);
    }
    // Nothing was attempted: the client did not even join.
    expect(proxy.node.state.state).toBe('DOWN');
  });
});

describe('serializer and deserializer', () => {
  it('refuses codec options at construction, saying what to do instead', () => {
    const identity = { serialize: (value: unknown) => value };
    expect(() => new KableClientProxy({ serializer: identity } as never)).toThrow(
      /KableClientProxy does not take a "serializer": Kable frames carry .* as MessagePack .* overrides serializeResponse\(\)\/serializeError\(\)/,
    );
    expect(() => new KableClientProxy({ deserializer: { deserialize: (v: unknown) => v } } as never)).toThrow(
      /does not take a "deserializer"/,
    );
    expect(() => new KableServer({ id: 'math', serializer: identity } as never)).toThrow(
      /KableServer does not take a "serializer": .* in the handler, an interceptor or an exception filter/,
    );
  });

  it('passes replies and errors through serializeResponse and serializeError overrides', async () => {
    class WrappingClient extends KableClientProxy {
      protected override serializeResponse(response: unknown): unknown {
        return { wrapped: response };
      }
      protected override serializeError(error: unknown): unknown {
        return { failed: error };
      }
    }
    await cluster.service(MathModule, 'math');
    const proxy = cluster.client({ target: 'math' }, WrappingClient);
    await proxy.whenServed('async');
    expect(await firstValueFrom(proxy.send('async', 21))).toEqual({ wrapped: 42 });
    await expect(firstValueFrom(proxy.send('rpc-error', {}))).rejects.toEqual({
      failed: { code: 'E_MATH', reason: 'refused on purpose' },
    });
    await expect(firstValueFrom(proxy.send('nobody', {}))).rejects.toEqual({ failed: NO_MESSAGE_HANDLER });
    // Kable's own errors too: the caller sees one shape whatever failed.
    const lost = cluster.client({ target: 'nowhere', timeout: 100 }, WrappingClient);
    await expect(firstValueFrom(lost.send('async', 1))).rejects.toEqual({
      failed: expect.objectContaining({ code: 'KABLE_NO_NODE' }),
    });
  });
});

describe('limits and failures through the proxy', () => {
  /** Sends `hold` requests named `names`, resolving once every one is held by some replica. */
  async function hold(client: KableClientProxy, ledgers: MathLedger[], names: string[]) {
    const replies = names.map((name) => firstValueFrom(client.send<string>('hold', name)));
    await waitUntil(
      () => names.every((name) => ledgers.some((ledger) => ledger.gates.has(name))),
      ledgers,
      ['changed'],
      5000,
      `${names.join(', ')} held`,
    );
    return replies;
  }

  it('fails a request whose handler never answers with KABLE_TIMEOUT, then cancels it on the server', async () => {
    const app = await cluster.service(MathModule, 'math');
    const math = cluster.client({ target: 'math', timeout: 300 });
    await math.whenServed('silent');
    const ledger = app.get(MathLedger);
    const started = Date.now();
    await expect(firstValueFrom(math.send('silent', {}))).rejects.toMatchObject({
      code: 'KABLE_TIMEOUT',
      message: 'Request "silent" did not complete within 300 ms (option: timeout).',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(295);
    await waitUntil(() => ledger.cancelled === 1, [ledger], ['changed'], 5000, 'the server-side cancel');
    expect(statsOf(app)).toMatchObject({ 'dataPlane.inFlight': 0, 'dataPlane.cancelled': 1 });
  });

  it("applies the client's maxFrameSize to replies", async () => {
    const app = await cluster.service(MathModule, 'math');
    const math = cluster.client({ target: 'math', maxFrameSize: 1024 });
    await math.whenServed('echo');
    expect(await firstValueFrom(math.send('echo', 'x'.repeat(900)))).toHaveLength(900);
    await expect(firstValueFrom(math.send('echo', 'x'.repeat(2000)))).rejects.toMatchObject({
      code: 'KABLE_PAYLOAD_TOO_LARGE',
      message: expect.stringContaining('over the 1024-byte limit of its caller'),
    });
    // That request alone failed: the connection carries on.
    expect(await firstValueFrom(math.send('echo', 'y'.repeat(900)))).toHaveLength(900);
    expect(statsOf(app)).toMatchObject({ 'dataPlane.oversizedReplies': 1, 'dataPlane.connections': 1 });
  });

  it("applies the server's maxFrameSize to requests", async () => {
    const app = await cluster.service(MathModule, 'math', { maxFrameSize: 1024 });
    const math = cluster.client({ target: 'math' });
    await math.whenServed('echo');
    expect(await firstValueFrom(math.send('echo', 'x'.repeat(900)))).toHaveLength(900);
    // The client learnt the server's limit when it connected: the request fails before it is sent.
    await expect(firstValueFrom(math.send('echo', 'x'.repeat(2000)))).rejects.toMatchObject({
      code: 'KABLE_PAYLOAD_TOO_LARGE',
      message: expect.stringContaining('over the 1024-byte limit'),
    });
    expect(await firstValueFrom(math.send('echo', 'y'.repeat(900)))).toHaveLength(900);
    expect(statsOf(app)['dataPlane.dropped.oversizedFrame'] ?? 0).toBe(0);
    expect(statsOf(app)).toMatchObject({ 'dataPlane.connections': 1 });
  });

  it("refuses requests beyond the server's maxInFlightPerConnection, retryably", async () => {
    const app = await cluster.service(MathModule, 'math', { maxInFlightPerConnection: 2 });
    const math = cluster.client({ target: 'math', retries: 0 });
    await math.whenServed('hold');
    const ledger = app.get(MathLedger);
    const held = await hold(math, [ledger], ['a', 'b']);
    await expect(firstValueFrom(math.send('who', {}))).rejects.toMatchObject({ code: 'KABLE_REFUSED' });
    expect(statsOf(app)).toMatchObject({ 'dataPlane.refusedRequests': 1, 'dataPlane.inFlight': 2 });
    ledger.release('a');
    ledger.release('b');
    await Promise.all(held);
  });

  it("fails requests beyond the client's maxPending at once with KABLE_BACKPRESSURE", async () => {
    const app = await cluster.service(MathModule, 'math');
    const math = cluster.client({ target: 'math', retries: 0, maxPending: 2 });
    await math.whenServed('hold');
    const ledger = app.get(MathLedger);
    const held = await hold(math, [ledger], ['a', 'b']);
    await expect(firstValueFrom(math.send('who', {}))).rejects.toMatchObject({ code: 'KABLE_BACKPRESSURE' });
    expect(ledger.served).toBe(0);
    ledger.release('a');
    ledger.release('b');
    await Promise.all(held);
    expect(await firstValueFrom(math.send('who', {}))).toBe(serverOf(app).node.iid);
  });

  it("closes connections beyond the server's maxConnections", async () => {
    const app = await cluster.service(MathModule, 'math', { maxConnections: 1 });
    const first = cluster.client({ target: 'math' });
    await first.whenServed('who');
    const second = cluster.client({ target: 'math', retries: 0, timeout: 500 });
    // The second client's connection is closed as it arrives: it cannot even ask what the node serves.
    await expect(firstValueFrom(second.send('who', {}))).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message: expect.stringContaining(
        'Known services: kable-client (1 RUNNING), math (1 RUNNING). The pattern lists of 1 RUNNING node(s) could not be fetched',
      ),
    });
    expect(statsOf(app)).toMatchObject({ 'dataPlane.connections': 1, 'dataPlane.openConnections': 1 });
    expect(await firstValueFrom(first.send('who', {}))).toBe(serverOf(app).node.iid);
    expect(app.get(MathLedger).served).toBe(1);
  });

  it('retries a refused request on the next replica', async () => {
    const apps = await Promise.all(
      [1, 2].map(() => cluster.service(MathModule, 'math', { maxInFlightPerConnection: 1 })),
    );
    const ledgers = apps.map((app) => app.get(MathLedger));
    const math = cluster.client({ target: 'math' });
    await math.whenServed('who', { count: 2 });
    // Round robin: the held request takes one replica, the next request the other, the third the held one.
    const [held] = await hold(math, ledgers, ['a']);
    const busy = ledgers.findIndex((ledger) => ledger.gates.has('a'));
    const free = 1 - busy;
    expect(await firstValueFrom(math.send('who', {}))).toBe(serverOf(apps[free]).node.iid);
    expect(await firstValueFrom(math.send('who', {}))).toBe(serverOf(apps[free]).node.iid);
    expect(statsOf(apps[busy])).toMatchObject({ 'dataPlane.refusedRequests': 1 });
    expect(ledgers[free].served).toBe(2);
    ledgers[busy].release('a');
    await held;
  });

  it('stops after `retries` extra attempts, failing with the last refusal', async () => {
    const apps = await Promise.all(
      [1, 2, 3].map(() => cluster.service(MathModule, 'math', { maxInFlightPerConnection: 1 })),
    );
    const ledgers = apps.map((app) => app.get(MathLedger));
    const math = cluster.client({ target: 'math', retries: 1 });
    await math.whenServed('who', { count: 3 });
    const held = await hold(math, ledgers, ['a', 'b', 'c']);
    expect(ledgers.map((ledger) => ledger.gates.size)).toEqual([1, 1, 1]);
    await expect(firstValueFrom(math.send('who', {}))).rejects.toMatchObject({ code: 'KABLE_REFUSED' });
    const refused = apps.map((app) => statsOf(app)['dataPlane.refusedRequests']);
    expect(refused.reduce((a, b) => a + b, 0)).toBe(2);
    for (const [i, ledger] of ledgers.entries())
      ledger.release(['a', 'b', 'c'].find((n) => ledger.gates.has(n)) ?? `${i}`);
    await Promise.all(held);
  });

  it('stops waiting for a node when the caller unsubscribes, and never sends the request', async () => {
    const proxy = cluster.client({ pickTimeout: 10_000 });
    await proxy.connect();
    const outcomes: string[] = [];
    const subscription = proxy.send('who', {}).subscribe({
      next: () => outcomes.push('next'),
      error: () => outcomes.push('error'),
      complete: () => outcomes.push('complete'),
    });
    expect(waitingOf(proxy)).toBe(1);
    subscription.unsubscribe();
    expect(waitingOf(proxy)).toBe(0);
    const app = await cluster.service(MathModule, 'math');
    await proxy.whenServed('who');
    expect(await firstValueFrom(proxy.send('who', {}))).toBe(serverOf(app).node.iid);
    expect(app.get(MathLedger).served).toBe(1);
    expect(outcomes).toEqual([]);
  });

  it('rejects whenServed with KABLE_NO_NODE once its timeout passes', async () => {
    await cluster.service(MathModule, 'math');
    const proxy = cluster.client();
    await proxy.whenServed('who');
    const started = Date.now();
    await expect(proxy.whenServed('who', { count: 2, timeout: 200 })).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message:
        'No RUNNING node handles pattern "who" on 2 node(s) (waited 200 ms, option: timeout). Known services: math (1 RUNNING).',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
    expect(waitingOf(proxy)).toBe(0);
  });

  it('emits to another replica of the service when the chosen one cannot be reached', async () => {
    const apps = await Promise.all([1, 2].map(() => cluster.service(MathModule, 'math')));
    const ledgers = apps.map((app) => app.get(MathLedger));
    const proxy = cluster.client();
    const strict = cluster.client({ retries: 0 });
    await proxy.whenServed('who', { count: 2 });
    await strict.whenServed('who', { count: 2 });
    // The first replica's data plane goes away while its node still advertises RUNNING (a hung process);
    // the test waits until the clients saw their connections to it close (a write racing the close is
    // lost: events are at most once).
    const closed = [proxy, strict].map((client) => {
      const pool = (
        client as unknown as { pool: { main: { connections: Map<string, { socket?: EventEmitter }> } } }
      ).pool.main;
      const socket = pool.connections.get(serverOf(apps[0]).node.iid)?.socket;
      return socket === undefined ? Promise.resolve() : once(socket, 'close');
    });
    await (serverOf(apps[0]) as unknown as { dataPlane: { close(): Promise<void> } }).dataPlane.close();
    await Promise.all(closed);
    for (let n = 0; n < 4; n++) {
      await lastValueFrom(proxy.emit('order_created', { n }), { defaultValue: undefined });
    }
    await waitUntil(
      () => ledgers[1].events.length === 4,
      ledgers,
      ['changed'],
      5000,
      'four events on replica 2',
    );
    expect(ledgers.map((ledger) => ledger.events.length)).toEqual([0, 4]);
    // Without retries, the turn that falls on the unreachable replica fails.
    const results = await Promise.allSettled(
      [0, 1].map((n) => lastValueFrom(strict.emit('order_created', { n }), { defaultValue: undefined })),
    );
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(results.find((result) => result.status === 'rejected')).toMatchObject({
      reason: { code: 'KABLE_PEER_UNREACHABLE' },
    });
  });
  it('tries each replica at most once when an emit falls back', async () => {
    const apps = await Promise.all([1, 2, 3].map(() => cluster.service(MathModule, 'math')));
    const proxy = cluster.client({ retries: 2 });
    await proxy.whenServed('who', { count: 3 });
    await lastValueFrom(proxy.emit('order_created', { n: -1 }), { defaultValue: undefined });
    // Close the data planes of the two replicas that come first in the event route's order, so that a
    // fallback that only skips the replica that just failed goes back to the first one and gives up.
    const order = (
      proxy as unknown as { router: { candidates(p: string, k: string): Array<{ iid: string }> } }
    ).router
      .candidates('order_created', 'events')
      .map((peer) => peer.iid);
    const byIid = new Map<string, (typeof apps)[number]>(apps.map((app) => [serverOf(app).node.iid, app]));
    const [gone1, gone2, alive] = order.map((iid) => byIid.get(iid)!);
    const pool = (
      proxy as unknown as { pool: { main: { connections: Map<string, { socket?: EventEmitter }> } } }
    ).pool.main;
    // 'close' only: a reset socket also emits 'error', which would reject once().
    const closed = [gone1, gone2].map((app) => {
      const socket = pool.connections.get(serverOf(app).node.iid)?.socket;
      return new Promise<void>((resolve) =>
        socket === undefined ? resolve() : socket.on('close', () => resolve()),
      );
    });
    for (const app of [gone1, gone2]) {
      await (serverOf(app) as unknown as { dataPlane: { close(): Promise<void> } }).dataPlane.close();
    }
    await Promise.all(closed);
    const ledger = alive.get(MathLedger);
    const before = ledger.events.length;
    for (let n = 0; n < 6; n++) {
      await lastValueFrom(proxy.emit('order_created', { n }), { defaultValue: undefined });
    }
    await waitUntil(() => ledger.events.length === before + 6, [ledger], ['changed'], 5000, 'six events');
    expect(ledger.events.length).toBe(before + 6);
  });
});

describe('request deadlines, one timer per client', () => {
  it('fails a silent request with KABLE_TIMEOUT while answered ones leave the list', async () => {
    await cluster.service(MathModule, 'math');
    const math = cluster.client({ target: 'math', timeout: 300 });
    await math.whenServed('silent');
    expect(deadlinesOf(math)).toEqual({ size: 0, armed: false });
    const silent = firstValueFrom(math.send('silent', {}));
    // lastValueFrom: its request completes before it is unsubscribed (firstValueFrom cancels first).
    await Promise.all([1, 2, 3].map(() => lastValueFrom(math.send('who', {}))));
    expect(deadlinesOf(math)).toEqual({ size: 1, armed: true });
    await expect(silent).rejects.toMatchObject({
      code: 'KABLE_TIMEOUT',
      message: 'Request "silent" did not complete within 300 ms (option: timeout).',
    });
    expect(deadlinesOf(math)).toEqual({ size: 0, armed: false });
  });

  it('keeps no timer once requests have completed, failed or been cancelled', async () => {
    await cluster.service(MathModule, 'math');
    const math = cluster.client({ target: 'math' });
    await math.whenServed('who');
    await lastValueFrom(math.send('who', {}));
    await expect(lastValueFrom(math.send('rpc-error', {}))).rejects.toBeDefined();
    math.send('silent', {}).subscribe().unsubscribe();
    expect(deadlinesOf(math)).toEqual({ size: 0, armed: false });
  });
});

describe('status, on() and unwrap()', () => {
  it("report the client node's connection status and events, and hand out its node", async () => {
    const proxy = cluster.client();
    const statuses: string[] = [];
    const subscription = proxy.status.subscribe((status) => statuses.push(status));
    const added: string[] = [];
    proxy.on('peer:added', (peer: { id: string }) => added.push(peer.id));
    expect(proxy.unwrap()).toBe(proxy.node);
    await proxy.connect();
    expect(statuses).toEqual(['connected']);
    await cluster.service(MathModule, 'math');
    await proxy.whenServed('who');
    expect(added).toContain('math');
    await proxy.close();
    expect(statuses).toEqual(['connected', 'disconnected']);
    subscription.unsubscribe();
  });
});
