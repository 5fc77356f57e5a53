import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, UseGuards, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, type ClientProxy, type MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServingGuard } from '../../lib/nest/guards/kable-serving.guard.js';
import { KableHealthIndicator } from '../../lib/nest/kable.health.js';
import { KableModule } from '../../lib/nest/kable.module.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { KableNode } from '../../lib/node/kable-node.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { waitForEvent, waitUntil } from '../support/events.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';

const discovery = (bus: MemoryBus) => ({ transport: bus.transport(), advertiseInterval: 50 });

describe('node state from Nest', () => {
  let bus = new MemoryBus();
  const apps: INestMicroservice[] = [];
  const clients: KableClientProxy[] = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
    bus = new MemoryBus();
  });

  async function replica(): Promise<{ app: INestMicroservice; node: KableNode; ledger: MathLedger }> {
    const server = new KableServer({
      id: 'math',
      replica: true,
      host: '127.0.0.1',
      discovery: discovery(bus),
      leaveGrace: 0,
    });
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
      strategy: server,
      logger: false,
    });
    await app.listen();
    apps.push(app);
    return { app, node: server.node, ledger: app.get(MathLedger) };
  }

  function client(): KableClientProxy {
    const proxy = new KableClientProxy({ host: '127.0.0.1', target: 'math', discovery: discovery(bus) });
    clients.push(proxy);
    return proxy;
  }

  it('@KableDoing takes the node out of rotation while the handler runs, and back after', async () => {
    const replicas = [await replica(), await replica()];
    const math = client();
    await math.whenServed('who', { count: 2 });
    const busy = waitForEvent(math.node, 'peer:state', (p: PeerRecord) => p.state === 'DOING_SOMETHING');
    const rebuilt = firstValueFrom(math.send<string>('rebuild', 'index'));
    const [peer] = (await busy) as [PeerRecord];
    expect(peer.reason).toBe('rebuilding the index');
    const worker = replicas.find((r) => r.node.iid === peer.iid)!;
    const other = replicas.find((r) => r.node.iid !== peer.iid)!;
    await waitUntil(
      () => math.nodesFor('who').length === 1,
      [math.node],
      ['peer:state'],
      5000,
      'the busy node to leave',
    );

    const servedBefore = worker.ledger.served;
    const during = await Promise.all(
      Array.from({ length: 50 }, () => firstValueFrom(math.send<string>('who', {}))),
    );
    expect(new Set(during)).toEqual(new Set([other.node.iid]));
    expect(worker.ledger.served).toBe(servedBefore);

    const back = waitForEvent(
      math.node,
      'peer:state',
      (p: PeerRecord) => p.iid === peer.iid && p.state === 'RUNNING',
    );
    worker.ledger.release('index');
    expect(await rebuilt).toBe('rebuilt index');
    await back;
    await waitUntil(
      () => math.nodesFor('who').length === 2,
      [math.node],
      ['peer:state'],
      5000,
      'the node to return',
    );
    const after = await Promise.all(
      Array.from({ length: 50 }, () => firstValueFrom(math.send<string>('who', {}))),
    );
    expect(new Set(after)).toEqual(new Set([worker.node.iid, other.node.iid]));
  });

  it('concurrent busy handlers keep the node busy until the last one ends', async () => {
    const { node, ledger } = await replica();
    const math = client();
    await math.whenServed('rebuild');
    // Sent in one turn, both frames reach the node while it is still RUNNING.
    const first = firstValueFrom(math.send<string>('rebuild', 'a'));
    const second = firstValueFrom(math.send<string>('rebuild', 'b'));
    await waitUntil(() => ledger.gates.size === 2, [ledger], ['changed'], 5000, 'both busy handlers');
    expect(node.state.state).toBe('DOING_SOMETHING');
    ledger.release('a');
    expect(await first).toBe('rebuilt a');
    expect(node.state.state).toBe('DOING_SOMETHING');
    ledger.release('b');
    expect(await second).toBe('rebuilt b');
    expect(node.state.state).toBe('RUNNING');
  });

  it('a node stopped while a busy handler runs stays stopped when it ends', async () => {
    const { node, ledger } = await replica();
    const math = client();
    await math.whenServed('rebuild');
    const done = firstValueFrom(math.send<string>('rebuild', 'x'));
    await waitUntil(() => ledger.gates.size === 1, [ledger], ['changed'], 5000, 'the busy handler');
    node.stop('maintenance');
    ledger.release('x');
    expect(await done).toBe('rebuilt x');
    expect(node.state).toMatchObject({ state: 'STOPPED', reason: 'maintenance' });
  });

  it('KableModule.forRootAsync shares one node between a hybrid app’s server and its clients', async () => {
    @Module({
      imports: [
        MathModule,
        KableModule.forRootAsync({
          useFactory: async () => ({
            id: 'hybrid',
            replica: true,
            host: '127.0.0.1',
            discovery: discovery(bus),
          }),
        }),
        ClientsModule.registerAsync([
          {
            name: 'MATH',
            inject: [KableNode],
            useFactory: (node: KableNode) => ({
              customClass: KableClientProxy,
              options: { node, target: 'hybrid' },
            }),
          },
        ]),
      ],
    })
    class HybridModule {}
    // A hybrid app as Nest users write one: HTTP app, Kable microservice connected to it.
    const app = await NestFactory.create(HybridModule, { logger: false });
    const shared = app.get(KableNode);
    const server = new KableServer({ node: shared });
    app.connectMicroservice<MicroserviceOptions>({ strategy: server });
    await app.startAllMicroservices();
    await app.init();
    try {
      const math = app.get<ClientProxy>('MATH') as KableClientProxy;
      expect(math.unwrap()).toBe(shared);
      expect(server.unwrap()).toBe(shared);
      await math.whenServed({ cmd: 'sum' });
      expect(await firstValueFrom(math.send({ cmd: 'sum' }, [2, 3]))).toBe(5);
      expect(shared.running('hybrid').map((p) => p.iid)).toEqual([shared.iid]);
    } finally {
      await app.close();
    }
    expect(shared.state.state).toBe('DOWN');
  });
});

describe('health and serving guard', () => {
  it('reports up while RUNNING and every needed pattern is served, down otherwise', async () => {
    const bus = new MemoryBus();
    const server = new KableServer({
      id: 'math',
      host: '127.0.0.1',
      discovery: discovery(bus),
      leaveGrace: 0,
    });
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
      strategy: server,
      logger: false,
    });
    await app.listen();
    const math = new KableClientProxy({ host: '127.0.0.1', target: 'math', discovery: discovery(bus) });
    try {
      await math.whenServed({ cmd: 'sum' });
      const health = new KableHealthIndicator();
      const options = { client: math, patterns: [{ cmd: 'sum' }, 'who'] };
      expect(health.check('kable', options)).toEqual({
        kable: { status: 'up', state: 'RUNNING', peers: 1, patterns: { '{"cmd":"sum"}': 1, who: 1 } },
      });
      const stopped = waitForEvent(math.node, 'peer:state', (p: PeerRecord) => p.state === 'STOPPED');
      server.node.stop('maintenance');
      await stopped;
      expect(health.check('kable', options).kable).toMatchObject({ status: 'down', patterns: { who: 0 } });
      expect(health.check('math', { node: server.node }).math).toMatchObject({
        status: 'down',
        reason: 'maintenance',
      });
    } finally {
      await math.close();
      await app.close();
    }
  });
});

describe('KableServingGuard on HTTP routes of a hybrid app', () => {
  it('answers 503 while the node is not RUNNING', async () => {
    @Controller()
    class PingController {
      @Get('ping')
      @UseGuards(KableServingGuard)
      ping(): string {
        return 'pong';
      }
    }
    const bus = new MemoryBus();
    @Module({
      imports: [KableModule.forRoot({ id: 'web', host: '127.0.0.1', discovery: discovery(bus) })],
      controllers: [PingController],
    })
    class WebModule {}
    const app = await NestFactory.create(WebModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    try {
      const url = `${await app.getUrl()}/ping`.replace('[::1]', '127.0.0.1');
      expect((await fetch(url)).status).toBe(200);
      app.get(KableNode).doing('migrating');
      const refused = await fetch(url);
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { message: string }).message).toMatch(
        /DOING_SOMETHING \(migrating\)/,
      );
    } finally {
      await app.close();
    }
  });
});
