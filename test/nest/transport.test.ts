import { afterEach, describe, expect, it } from '@jest/globals';
import { Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ClientTCP,
  ClientsModule,
  Transport,
  type ClientProxy,
  type MicroserviceOptions,
} from '@nestjs/microservices';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { firstValueFrom, lastValueFrom, tap, toArray } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { NO_MESSAGE_HANDLER } from '../../lib/nest/kable.constants.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { waitUntil } from '../support/events.js';
import { InProcessCluster, serverOf } from './fixtures/in-process.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';
import { OrdersLedger, OrdersModule } from './fixtures/orders.module.js';
import { outcome } from '../support/outcome.js';

const nest11 = process.env.KABLE_NEST_COMPAT === '11';

// Every test runs twice: with no processing hooks (replies straight from the handler's result, see
// lib/nest/direct-reply.ts) and with hooks set, as instrumentation does (Nest 12's handleRequest, Nest 11's
// start/end hooks). The expectations are the same, so both paths must answer identically.
describe.each(['direct', 'hooks'] as const)(
  'KableServer and KableClientProxy in one process (%s replies)',
  (replies) => {
    const cluster = new InProcessCluster();
    const hooks = { started: 0, ended: 0 };

    afterEach(async () => {
      await cluster.close();
      hooks.started = hooks.ended = 0;
    });

    function service(module: unknown, id: string): Promise<INestMicroservice> {
      return cluster.service(module, id, {}, (strategy) => {
        if (replies !== 'hooks') return;
        strategy.setOnProcessingStartHook((_transport, _context, done) => {
          hooks.started++;
          return done();
        });
        strategy.setOnProcessingEndHook(() => hooks.ended++);
      });
    }

    function client(options: ConstructorParameters<typeof KableClientProxy>[0] = {}): KableClientProxy {
      return cluster.client(options);
    }

    const server = serverOf;

    it('spreads 3,000 requests over three replicas, 1,000 ± 1 each', async () => {
      const replicas = await Promise.all([1, 2, 3].map(() => service(MathModule, 'math')));
      const math = client({ target: 'math' });
      await math.whenServed('who', { count: 3 });
      const counts = new Map<string, number>();
      const answers = await Promise.all(
        Array.from({ length: 3000 }, () => firstValueFrom(math.send<string>('who', {}))),
      );
      for (const iid of answers) counts.set(iid, (counts.get(iid) ?? 0) + 1);
      expect(counts.size).toBe(3);
      for (const count of counts.values()) expect(Math.abs(count - 1000)).toBeLessThanOrEqual(1);
      const served = replicas.map((app) => app.get(MathLedger).served);
      expect(served.reduce((a, b) => a + b, 0)).toBe(3000);
    });

    it('sends nothing to a STOPPED or DOING_SOMETHING replica', async () => {
      const replicas = await Promise.all([1, 2, 3].map(() => service(MathModule, 'math')));
      const math = client();
      await math.whenServed({ cmd: 'sum' }, { count: 3 });
      server(replicas[0]).node.stop('maintenance');
      server(replicas[1]).node.doing('batch job');
      await waitUntil(
        () => math.nodesFor({ cmd: 'sum' }).length === 1,
        [math.node],
        ['peer:state'],
        5000,
        'the client to see two replicas leave the rotation',
      );
      for (let i = 0; i < 300; i++)
        expect(await firstValueFrom(math.send({ cmd: 'sum' }, [i, 1]))).toBe(i + 1);
      expect(replicas.map((app) => app.get(MathLedger).served)).toEqual([0, 0, 300]);
    });

    it('reaches two services with different patterns through one client, and emits once per service', async () => {
      const [math1, math2] = await Promise.all([service(MathModule, 'math'), service(MathModule, 'math')]);
      const orders = await service(OrdersModule, 'orders');
      const proxy = client();
      await proxy.whenServed({ cmd: 'sum' }, { count: 2 });
      await proxy.whenServed({ cmd: 'order' });
      expect(await firstValueFrom(proxy.send({ cmd: 'sum' }, [1, 2, 3]))).toBe(6);
      expect(await firstValueFrom(proxy.send({ cmd: 'order' }, 7))).toEqual({ id: 7, status: 'accepted' });

      for (let n = 0; n < 10; n++)
        await lastValueFrom(proxy.emit('order_created', { n }), { defaultValue: undefined });
      const ordersLedger = orders.get(OrdersLedger);
      const ledgers = [math1.get(MathLedger), math2.get(MathLedger)];
      const mathEvents = () => ledgers[0].events.length + ledgers[1].events.length;
      await waitUntil(
        () => ordersLedger.events.length === 10 && mathEvents() === 10,
        [ordersLedger, ...ledgers],
        ['changed'],
        5000,
        'ten events in each service',
      );
      expect(ordersLedger.events).toHaveLength(10);
      expect(mathEvents()).toBe(10);
      // Round robin within the service: both math replicas got some.
      expect(math1.get(MathLedger).events.length).toBe(5);
    });

    it('streams Observables, resolves Promises, and passes RpcException payloads unchanged', async () => {
      await service(MathModule, 'math');
      const math = client({ target: 'math' });
      await math.whenServed('count');
      expect(await lastValueFrom(math.send('count', 5).pipe(toArray()))).toEqual([1, 2, 3, 4, 5]);
      expect(await firstValueFrom(math.send('async', 21))).toBe(42);
      await expect(firstValueFrom(math.send('rpc-error', {}))).rejects.toEqual({
        code: 'E_MATH',
        reason: 'refused on purpose',
      });
      const seen: number[] = [];
      await expect(
        lastValueFrom(math.send('stream-error', {}).pipe(tap((n: number) => seen.push(n)))),
      ).rejects.toEqual({
        code: 'E_STREAM',
        reason: 'failed mid-stream',
      });
      expect(seen).toEqual([1, 2]);
      await expect(firstValueFrom(math.send('crash', {}))).rejects.toEqual({
        status: 'error',
        message: 'Internal server error',
      });
      expect(await outcome(math.send('nothing', {}))).toEqual({ values: [] });
      // A filter that throws makes the handler reject: the caller still gets an answer.
      expect(await outcome(math.send('filter-throws', {}))).toEqual({
        values: [],
        error: { code: 'E_FILTER_THREW' },
      });
      // Seven requests, each between the start and the end hook (exactly once) on the hooks path.
      expect(hooks).toEqual(replies === 'hooks' ? { started: 7, ended: 7 } : { started: 0, ended: 0 });
    });

    it("answers errors from exception filters exactly as Nest's TCP transport does", async () => {
      await service(MathModule, 'math');
      const math = client({ target: 'math' });
      await math.whenServed('filtered');
      // The same module behind Nest's own TCP transport, as the reference.
      const tcpApp = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
        transport: Transport.TCP,
        options: { host: '127.0.0.1', port: 0 },
        logger: false,
      });
      await tcpApp.listen();
      const tcp = new ClientTCP({
        host: '127.0.0.1',
        port: (
          (tcpApp as unknown as { serverInstance: { unwrap<T>(): T } }).serverInstance
            .unwrap<NetServer>()
            .address() as AddressInfo
        ).port,
      });
      try {
        const patterns: Array<[string, unknown]> = [
          ['filtered', 'bare'],
          ['filtered', 'coded'],
          ['filtered', 'null'],
          ['filtered', 'object'],
          ['crash', {}],
          ['rpc-error', {}],
          ['stream-error', {}],
          ['nothing', {}],
        ];
        for (const [pattern, data] of patterns) {
          const expected = await outcome(tcp.send(pattern, data));
          expect({ pattern, data, ...(await outcome(math.send(pattern, data))) }).toEqual({
            pattern,
            data,
            ...expected,
          });
        }
        // Spelled out, so the reference itself is pinned: an Error's message never travels.
        expect(await outcome(math.send('filtered', 'bare'))).toEqual({ values: [], error: {} });
        expect(await outcome(math.send('filtered', 'coded'))).toEqual({
          values: [],
          error: { code: 'E_CODED' },
        });
        expect(await outcome(math.send('filtered', 'null'))).toEqual({ values: [] });
      } finally {
        await tcp.close();
        await tcpApp.close();
      }
    });

    it('hands a binary payload to the handler as a Buffer viewing the received frame, not a copy', async () => {
      await service(MathModule, 'math');
      const math = client({ target: 'math' });
      await math.whenServed('binary-shape');
      const length = 200 * 1024;
      const shape = await firstValueFrom(math.send('binary-shape', Buffer.alloc(length, 5)));
      // Its memory is the frame's (larger than the payload), and MessagePack's bin 32 header sits right before it.
      expect(shape).toEqual({
        isBuffer: true,
        length,
        memory: expect.any(Number),
        before: [0xc6, 0, (length >>> 16) & 255, (length >>> 8) & 255, length & 255],
      });
      expect((shape as { memory: number }).memory).toBeGreaterThan(length);
    });

    it('runs guards and pipes on message handlers', async () => {
      await service(MathModule, 'math');
      const math = client({ target: 'math' });
      await math.whenServed('guarded');
      expect(await firstValueFrom(math.send('guarded', { allow: true }))).toBe('let through');
      await expect(firstValueFrom(math.send('guarded', { allow: false }))).rejects.toEqual({
        status: 'error',
        message: 'Forbidden resource',
      });
      await expect(firstValueFrom(math.send('guarded', { allow: 'throw' }))).rejects.toEqual({
        code: 'E_GUARD',
        reason: 'not allowed',
      });
      expect(await firstValueFrom(math.send('validated', { n: 21 }))).toBe(42);
      await expect(firstValueFrom(math.send('validated', { n: 'x' }))).rejects.toEqual({
        statusCode: 400,
        message: ['n must be an integer'],
        error: 'Bad Request',
      });
    });

    it("passes packet metadata from Nest 12's dispatch hook and the caller's identity to the handler", async () => {
      const app = await service(MathModule, 'math');
      const math = client({ id: 'gateway', target: 'math' });
      await math.whenServed('context');
      const dispatch = (
        math as unknown as { setOnDispatchHook?: (hook: (packet: { metadata?: unknown }) => void) => void }
      ).setOnDispatchHook;
      // Feature-detected by the library; pinned here, so a Nest upgrade that drops it fails loudly.
      expect(typeof dispatch).toBe(nest11 ? 'undefined' : 'function');
      dispatch?.call(math, (packet) => {
        packet.metadata = { traceparent: '00-abc-def-01' };
      });
      const answer = await firstValueFrom(
        math.send<{ metadata: unknown; caller: unknown; pattern: string }>('context', {}),
      );
      expect(answer).toEqual({
        pattern: 'context',
        metadata: nest11 ? null : { traceparent: '00-abc-def-01' },
        caller: { id: 'gateway', iid: math.node.iid },
      });
      const ledger = app.get(MathLedger);
      expect(ledger.metadata).toEqual([nest11 ? undefined : { traceparent: '00-abc-def-01' }]);
      // Events carry it too.
      await lastValueFrom(math.emit('traced', {}), { defaultValue: undefined });
      await waitUntil(() => ledger.metadata.length === 2, [ledger], ['changed'], 5000, 'the traced event');
      expect(ledger.metadata[1]).toEqual(nest11 ? undefined : { traceparent: '00-abc-def-01' });
    });

    it("answers an unknown pattern with Nest's no-handler error when a target is set", async () => {
      await service(MathModule, 'math');
      const math = client({ target: 'math' });
      await math.whenServed('who');
      await expect(firstValueFrom(math.send('no-such-pattern', 1))).rejects.toBe(NO_MESSAGE_HANDLER);
    });

    it('fails with KABLE_NO_NODE after pickTimeout when nobody serves the pattern', async () => {
      const proxy = client({ pickTimeout: 100 });
      await expect(firstValueFrom(proxy.send('nobody-serves-this', 1))).rejects.toMatchObject({
        code: 'KABLE_NO_NODE',
        message: expect.stringContaining('nobody-serves-this'),
      });
    });

    it('cancels the handler on the server when the caller unsubscribes', async () => {
      const app = await service(MathModule, 'math');
      const math = client({ target: 'math' });
      await math.whenServed('endless');
      const ledger = app.get(MathLedger);
      const first = await new Promise<{ value: number; stop: () => void }>((resolve) => {
        const subscription = math
          .send<number>('endless', {})
          .subscribe((value) => resolve({ value, stop: () => subscription.unsubscribe() }));
      });
      expect(first.value).toBe(0);
      expect(ledger.cancelled).toBe(0);
      first.stop();
      await waitUntil(() => ledger.cancelled === 1, [ledger], ['changed'], 5000, 'the server-side cancel');
      expect(ledger.cancelled).toBe(1);
    });

    it('works through ClientsModule.register with customClass', async () => {
      await service(MathModule, 'math');
      const options = { host: '127.0.0.1', target: 'math', discovery: cluster.discovery() };
      @Module({
        imports: [ClientsModule.register([{ name: 'MATH', customClass: KableClientProxy, options }])],
      })
      class GatewayModule {}
      const gateway = await NestFactory.createApplicationContext(GatewayModule, { logger: false });
      try {
        const math = gateway.get<ClientProxy>('MATH');
        expect(math).toBeInstanceOf(KableClientProxy);
        await (math as KableClientProxy).whenServed({ cmd: 'sum' });
        expect(await firstValueFrom(math.send({ cmd: 'sum' }, [1, 2, 3]))).toBe(6);
      } finally {
        await gateway.close();
      }
    });
  },
);

describe('KableServer and KableClientProxy options', () => {
  it('rejects options it does not know, naming them', () => {
    expect(() => new KableClientProxy({ tagret: 'math' } as never)).toThrow(/no option "tagret"/);
    expect(() => new KableServer({ id: 'math', prot: 1 } as never)).toThrow(/no option "prot"/);
    expect(() => new KableClientProxy({ timeout: -1 })).toThrow(/"timeout" must be a positive integer/);
  });

  it('checks the connection deadlines and the per-address cap at construction', () => {
    expect(() => new KableServer({ id: 'math', helloTimeout: 0 })).toThrow(
      /"helloTimeout" must be a positive integer/,
    );
    expect(() => new KableServer({ id: 'math', partialFrameTimeout: 1.5 })).toThrow(
      /"partialFrameTimeout" must be a positive integer/,
    );
    expect(() => new KableServer({ id: 'math', handshakeTimeout: 2 ** 31 })).toThrow(
      /"handshakeTimeout" must be at most 2147483647/,
    );
    expect(() => new KableServer({ id: 'math', idleTimeout: -1 })).toThrow(
      /"idleTimeout" must be a positive/,
    );
    expect(() => new KableServer({ id: 'math', maxConnectionsPerAddress: 0 })).toThrow(
      /"maxConnectionsPerAddress" must be a positive integer/,
    );
    expect(() => new KableServer({ id: 'math', maxConnections: 100, maxConnectionsPerAddress: 101 })).toThrow(
      /"maxConnectionsPerAddress" \(101\) must be at most maxConnections \(100\)/,
    );
    expect(() => new KableClientProxy({ idleTimeout: 0 })).toThrow(
      /"idleTimeout" must be a positive integer/,
    );
  });
});
