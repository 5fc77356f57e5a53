import { afterEach, describe, expect, it } from '@jest/globals';
import { Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, type ClientProxy, type MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom, tap, toArray } from 'rxjs';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { NO_MESSAGE_HANDLER } from '../../lib/nest/kable.constants.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { waitUntil } from '../support/events.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';
import { OrdersLedger, OrdersModule } from './fixtures/orders.module.js';

// Real Nest apps and real TCP data planes in one process; discovery on the in-memory bus (the UDP
// backend has its own tests, and the multi-process suite runs these apps over UDP).
const discovery = (bus: MemoryBus) => ({ transport: bus.transport(), advertiseInterval: 50 });

describe('KableServer and KableClientProxy in one process', () => {
  let bus = new MemoryBus();
  const apps: INestMicroservice[] = [];
  const clients: KableClientProxy[] = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
    bus = new MemoryBus();
  });

  async function service(module: unknown, id: string): Promise<INestMicroservice> {
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(module as never, {
      strategy: new KableServer({ id, replica: true, host: '127.0.0.1', port: 0, discovery: discovery(bus) }),
      logger: false,
    });
    await app.listen();
    apps.push(app);
    return app;
  }

  function client(options: ConstructorParameters<typeof KableClientProxy>[0] = {}): KableClientProxy {
    const proxy = new KableClientProxy({ host: '127.0.0.1', discovery: discovery(bus), ...options });
    clients.push(proxy);
    return proxy;
  }

  function server(app: INestMicroservice): KableServer {
    return (app as unknown as { serverInstance: KableServer }).serverInstance;
  }

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
    for (let i = 0; i < 300; i++) expect(await firstValueFrom(math.send({ cmd: 'sum' }, [i, 1]))).toBe(i + 1);
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
    const options = { host: '127.0.0.1', target: 'math', discovery: discovery(bus) };
    @Module({ imports: [ClientsModule.register([{ name: 'MATH', customClass: KableClientProxy, options }])] })
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

  it('rejects options it does not know, naming them', () => {
    expect(() => new KableClientProxy({ tagret: 'math' } as never)).toThrow(/no option "tagret"/);
    expect(() => new KableServer({ id: 'math', prot: 1 } as never)).toThrow(/no option "prot"/);
    expect(() => new KableClientProxy({ timeout: -1 })).toThrow(/"timeout" must be a positive integer/);
  });
});
