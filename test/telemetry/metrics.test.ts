import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import type { Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import dgram from 'node:dgram';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { MathLedger, MathModule } from '../nest/fixtures/math.module.js';
import { waitForEvent, waitUntil } from '../support/events.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { installOtel, pointsOf, type Otel } from './support/otel.js';

// Metrics through the OpenTelemetry metrics API, read with an in-memory reader: real Nest apps, real TCP,
// real UDP discovery on loopback.
describe('OpenTelemetry metrics', () => {
  let otel: Otel;
  const apps: INestMicroservice[] = [];
  const clients: KableClientProxy[] = [];
  let cluster: MemoryCluster | undefined;

  beforeAll(() => {
    otel = installOtel();
  });
  afterAll(() => otel.shutdown());
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
    cluster?.close();
  });

  async function service(discovery: ReturnType<typeof loopbackDiscovery>): Promise<KableServer> {
    const server = new KableServer({ id: 'math', replica: true, host: '127.0.0.1', port: 0, discovery });
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
      strategy: server,
      logger: false,
    });
    await app.listen();
    apps.push(app);
    return server;
  }

  async function poll(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}.`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  const count = (metric: MetricData | undefined, match: Record<string, unknown>): number =>
    pointsOf(metric, match as never).reduce((total, point) => total + (point.value as Histogram).count, 0);
  const sum = (metric: MetricData | undefined, match: Record<string, unknown>): number =>
    pointsOf(metric, match as never).reduce((total, point) => total + (point.value as number), 0);

  it('records request durations, in-flight requests, retries, refusals, peers, discovery and bytes', async () => {
    const discovery = loopbackDiscovery();
    const [first, second] = [await service(discovery), await service(discovery)];
    const proxy = new KableClientProxy({ host: '127.0.0.1', discovery, target: 'math' });
    clients.push(proxy);
    await proxy.whenServed({ cmd: 'sum' }, { count: 2 });

    for (let i = 0; i < 10; i++) await firstValueFrom(proxy.send({ cmd: 'sum' }, [i]));
    await expect(firstValueFrom(proxy.send('rpc-error', {}))).rejects.toBeDefined();
    // Stopped in this very tick: the client still routes one of these to it; refused, then retried.
    first.node.stop('maintenance');
    await Promise.all([1, 2].map((n) => firstValueFrom(proxy.send({ cmd: 'sum' }, [n]))));
    await waitUntil(
      () => proxy.nodesFor({ cmd: 'sum' }).length === 1,
      [proxy.node],
      ['peer:state'],
      5000,
      'the client to see the stopped replica',
    );
    // A datagram that is no advert, to the cluster's group through loopback: dropped and counted by reason.
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    socket.setMulticastInterface('127.0.0.1');
    await new Promise((resolve) =>
      socket.send(Buffer.from('not an advert'), discovery.port, discovery.address, resolve),
    );
    socket.close();
    // Discovery counters have no event of their own: poll them, bounded.
    await poll(
      () => Object.entries(second.node.stats()).some(([key, n]) => key.startsWith('dropped.') && n > 0),
      'the replica to drop the datagram',
    );

    const metrics = await otel.reader.metrics();
    const client = metrics.get('rpc.client.call.duration');
    expect(client?.descriptor.unit).toBe('s');
    const sumOk = {
      'rpc.system.name': 'kable',
      'rpc.method': '{"cmd":"sum"}',
      'rpc.response.status_code': 'OK',
    };
    expect(count(client, { ...sumOk, 'kable.node.id': 'math' })).toBe(12);
    expect(count(client, { 'rpc.method': 'rpc-error', 'error.type': 'HANDLER_ERROR' })).toBe(1);
    const server = metrics.get('rpc.server.call.duration');
    expect(server?.descriptor.unit).toBe('s');
    expect(count(server, sumOk)).toBe(12);
    expect(count(server, { 'rpc.method': 'rpc-error', 'rpc.response.status_code': 'HANDLER_ERROR' })).toBe(1);
    expect(count(server, { 'rpc.response.status_code': 'KABLE_REFUSED' })).toBe(1);

    expect(sum(metrics.get('kable.client.requests.active'), {})).toBe(0);
    expect(sum(metrics.get('kable.server.requests.active'), {})).toBe(0);
    expect(sum(metrics.get('kable.client.retries'), { 'error.type': 'KABLE_REFUSED' })).toBe(1);
    expect(sum(metrics.get('kable.client.refusals'), { 'rpc.method': '{"cmd":"sum"}' })).toBe(1);
    expect(sum(metrics.get('kable.server.refusals'), { 'kable.node.iid': first.node.iid })).toBe(1);
    expect(sum(metrics.get('kable.server.refusals'), { 'kable.node.iid': second.node.iid })).toBe(0);

    const peers = metrics.get('kable.peer.count');
    const seenByClient = { 'kable.node.iid': proxy.node.iid, 'kable.peer.service': 'math' };
    expect(sum(peers, { ...seenByClient, 'kable.peer.state': 'RUNNING' })).toBe(1);
    expect(sum(peers, { ...seenByClient, 'kable.peer.state': 'STOPPED' })).toBe(1);

    const datagrams = metrics.get('kable.discovery.datagrams');
    for (const node of [first.node, second.node, proxy.node]) {
      expect(sum(datagrams, { 'kable.node.iid': node.iid, 'network.io.direction': 'transmit' })).toBe(
        node.stats().datagramsSent,
      );
      expect(
        sum(datagrams, { 'kable.node.iid': node.iid, 'network.io.direction': 'receive' }),
      ).toBeGreaterThan(0);
    }
    const dropped = metrics.get('kable.discovery.dropped');
    expect(sum(dropped, { 'kable.node.iid': second.node.iid })).toBeGreaterThanOrEqual(1);

    // The client's only connections are to the two replicas: what it sent is what they read.
    const io = metrics.get('kable.data_plane.io');
    expect(io?.descriptor.unit).toBe('By');
    const clientSent = sum(io, { 'kable.node.iid': proxy.node.iid, 'network.io.direction': 'transmit' });
    const serversRead =
      sum(io, { 'kable.node.iid': first.node.iid, 'network.io.direction': 'receive' }) +
      sum(io, { 'kable.node.iid': second.node.iid, 'network.io.direction': 'receive' });
    expect(clientSent).toBeGreaterThan(13 * 20);
    expect(serversRead).toBe(clientSent);
  });

  it('counts a request in flight until it ends', async () => {
    const discovery = loopbackDiscovery();
    await service(discovery);
    const proxy = new KableClientProxy({ host: '127.0.0.1', discovery, target: 'math' });
    clients.push(proxy);
    await proxy.whenServed('endless');
    const active = async () => {
      const metrics = await otel.reader.metrics();
      return [
        sum(metrics.get('kable.client.requests.active'), { 'rpc.method': 'endless' }),
        sum(metrics.get('kable.server.requests.active'), { 'rpc.method': 'endless' }),
      ];
    };
    let subscription: { unsubscribe(): void } | undefined;
    await new Promise((resolve) => {
      subscription = proxy.send('endless', {}).subscribe({ next: resolve });
    });
    expect(await active()).toEqual([1, 1]);
    subscription!.unsubscribe();
    const ledger = apps[0].get(MathLedger);
    await waitUntil(() => ledger.cancelled === 1, [ledger], ['changed'], 5000, 'the handler to be cancelled');
    // The client ends its span a microtask after the unsubscribe (a last value's completion may follow).
    await new Promise((resolve) => setImmediate(resolve));
    expect(await active()).toEqual([0, 0]);
    const metrics = await otel.reader.metrics();
    expect(count(metrics.get('rpc.client.call.duration'), { 'rpc.response.status_code': 'CANCELLED' })).toBe(
      1,
    );
    expect(count(metrics.get('rpc.server.call.duration'), { 'rpc.response.status_code': 'CANCELLED' })).toBe(
      1,
    );
  });

  it('counts evicted peers', async () => {
    let silenced = '';
    cluster = new MemoryCluster({ filter: (advert) => advert.iid !== silenced });
    const watcher = await cluster.up('watcher', { advertiseInterval: 20 });
    const proxy = new KableClientProxy({ node: watcher });
    clients.push(proxy);
    await proxy.connect();
    const seen = waitForEvent(watcher, 'peer:added');
    const quiet = await cluster.up('quiet', { advertiseInterval: 20 });
    await seen;
    silenced = quiet.iid;
    await waitForEvent(watcher, 'peer:removed', (p: { iid: string }) => p.iid === quiet.iid);
    const metrics = await otel.reader.metrics();
    expect(sum(metrics.get('kable.peer.evictions'), { 'kable.node.iid': watcher.iid })).toBe(1);
  });

  it("reports the replicas a node's clients exclude, by reason, from node.stats()", async () => {
    const { NodeMetrics } = await import('../../lib/telemetry/node-metrics.js');
    const { metrics: api } = await import('@opentelemetry/api');
    const nodeMetrics = new NodeMetrics();
    nodeMetrics.bind(api.getMeter('excluded-test'));
    const stats: Record<string, number> = {
      'client.latencyOutliers': 1,
      'client.latencyOutlierEvents': 4,
      'client.ejectedReplicas': 2,
      'client.ejections': 3,
    };
    const node = { id: 'caller', iid: 'caller-2', peers: () => [], stats: () => stats };
    const stop = nodeMetrics.observe(node as never);
    try {
      const metrics = await otel.reader.metrics();
      const self = { 'kable.node.iid': 'caller-2' };
      expect(sum(metrics.get('kable.peer.excluded'), { ...self, 'kable.reason': 'latency' })).toBe(1);
      expect(sum(metrics.get('kable.peer.excluded'), { ...self, 'kable.reason': 'failures' })).toBe(2);
      expect(sum(metrics.get('kable.peer.exclusions'), { ...self, 'kable.reason': 'latency' })).toBe(4);
      expect(sum(metrics.get('kable.peer.exclusions'), { ...self, 'kable.reason': 'failures' })).toBe(3);
    } finally {
      stop();
    }
  });

  it("reports the peers a node's clients find unresponsive, from node.stats()", async () => {
    // The liveness counters themselves are tested on the wire (test/data-plane/liveness.test.ts and
    // test/reliability/gray-failure.test.ts); here, that the metric reports what the node says.
    const { NodeMetrics } = await import('../../lib/telemetry/node-metrics.js');
    const { metrics: api } = await import('@opentelemetry/api');
    const nodeMetrics = new NodeMetrics();
    nodeMetrics.bind(api.getMeter('unresponsive-test'));
    const stats: Record<string, number> = { 'client.unresponsivePeers': 2, 'client.unresponsiveLapses': 5 };
    const node = { id: 'caller', iid: 'caller-1', peers: () => [], stats: () => stats };
    const stop = nodeMetrics.observe(node as never);
    try {
      let metrics = await otel.reader.metrics();
      expect(sum(metrics.get('kable.peer.unresponsive'), { 'kable.node.iid': 'caller-1' })).toBe(2);
      expect(sum(metrics.get('kable.peer.unresponsive_lapses'), { 'kable.node.iid': 'caller-1' })).toBe(5);
      stats['client.unresponsivePeers'] = 0;
      metrics = await otel.reader.metrics();
      expect(sum(metrics.get('kable.peer.unresponsive'), { 'kable.node.iid': 'caller-1' })).toBe(0);
    } finally {
      stop();
    }
  });
});
