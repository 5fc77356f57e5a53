import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type tls from 'node:tls';
import { firstValueFrom } from 'rxjs';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import type { KableOptions } from '../../lib/node/options.js';
import { makeCertificates, type ClusterCertificates } from '../support/certificates.js';
import { waitUntil } from '../support/events.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';

// Discovery on the in-memory bus, which does not seal: these tests are about the data plane alone, so a
// client without the key still learns where the server is, and must be stopped at the connection.
const keyA = randomBytes(32).toString('base64');
const keyB = randomBytes(32).toString('base64');

describe('data-plane security', () => {
  let bus = new MemoryBus();
  const apps: INestMicroservice[] = [];
  const clients: KableClientProxy[] = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
    bus = new MemoryBus();
  });

  async function replica(security: Pick<KableOptions, 'key' | 'keys'>, extra = {}) {
    const server = new KableServer({
      id: 'math',
      replica: true,
      host: '127.0.0.1',
      discovery: { transport: bus.transport(), advertiseInterval: 50 },
      leaveGrace: 50,
      ...security,
      ...extra,
    });
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
      strategy: server,
      logger: false,
    });
    await app.listen();
    apps.push(app);
    return { app, server, ledger: app.get(MathLedger) };
  }

  function client(security: Pick<KableOptions, 'key' | 'keys'>, extra = {}): KableClientProxy {
    const proxy = new KableClientProxy({
      host: '127.0.0.1',
      target: 'math',
      discovery: { transport: bus.transport(), advertiseInterval: 50 },
      ...security,
      ...extra,
    });
    clients.push(proxy);
    return proxy;
  }

  it('serves a client holding the key over TLS 1.3', async () => {
    await replica({ key: keyA });
    const math = client({ key: keyA });
    await math.whenServed({ cmd: 'sum' });
    expect(await firstValueFrom(math.send({ cmd: 'sum' }, [1, 2, 3]))).toBe(6);
    // What docs/security.md promises: the connection that carried it is TLS 1.3.
    const pool = (
      math as unknown as { pool: { main: { connections: Map<string, { socket?: tls.TLSSocket }> } } }
    ).pool.main;
    const sockets = [...pool.connections.values()].map((connection) => connection.socket);
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.encrypted).toBe(true);
    expect(sockets[0]?.getProtocol()).toBe('TLSv1.3');
  });

  it.each([
    ['a wrong key', { key: keyB }],
    ['no key', {}],
  ])('refuses a client with %s before any handler runs', async (_name, security) => {
    const { server, ledger } = await replica({ key: keyA });
    const stranger = client(security, { pickTimeout: 300, retries: 1 });
    // The stranger cannot fetch the pattern list either: ask its node whether it saw the server.
    await stranger.connect();
    await waitUntil(
      () => stranger.node.running('math').length === 1,
      [stranger.node],
      ['peer:added'],
      5000,
      'discovery',
    );
    const error = await firstValueFrom(stranger.send('who', {})).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: expect.stringMatching(/^KABLE_(NO_NODE|PEER_UNREACHABLE|PEER_LOST)$/),
    });
    expect(ledger.served).toBe(0);
    await waitUntil(
      () => (server.node.stats()['dataPlane.dropped.refusedConnection'] ?? 0) >= 1,
      [server.node],
      ['warning'],
      5000,
      'the refusal to be counted',
    );
  });

  it('gives a raw TCP client sending valid frames nothing', async () => {
    const { server, ledger } = await replica({ key: keyA });
    const socket = net.connect(server.node.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    const writer = new FrameWriter();
    socket.write(Buffer.concat([writer.encodeOne([8, 1]), writer.encodeOne([1, 2, 'who', {}])]));
    await new Promise((resolve) => socket.once('close', resolve));
    // A TLS server answers a non-TLS hello with at most an alert: never a frame.
    expect(Buffer.concat(received).length).toBeLessThan(10);
    expect(ledger.served).toBe(0);
  });

  // Two outsiders: one trusts the cluster CA but holds a certificate from another CA (only the server's
  // check of client certificates stops it), one holds such a certificate and trusts only its own CA.
  it.each([
    [
      'the cluster CA but a certificate from another CA',
      (pki: ClusterCertificates) => ({ ...pki.stranger, ca: pki.ca }),
    ],
    ['another CA only', (pki: ClusterCertificates) => ({ ...pki.stranger, ca: pki.otherCa })],
  ])(
    'with tls files, serves a client whose certificate the cluster CA signed, and refuses one trusting %s',
    async (_name, outsiderTls) => {
      const pki = makeCertificates();
      const { ledger, server } = await replica({}, { tls: { ...pki.node, ca: pki.ca } });
      const warnings: string[] = [];
      server.node.on('warning', (warning) => warnings.push(warning.message));
      const member = client({}, { tls: { ...pki.node, ca: pki.ca } });
      await member.whenServed({ cmd: 'sum' });
      expect(await firstValueFrom(member.send({ cmd: 'sum' }, [4, 4]))).toBe(8);
      const served = ledger.served;
      const outsider = client({}, { tls: outsiderTls(pki), pickTimeout: 300, retries: 1 });
      await outsider.connect();
      await waitUntil(
        () => outsider.node.running('math').length === 1,
        [outsider.node],
        ['peer:added'],
        5000,
        'discovery',
      );
      await expect(firstValueFrom(outsider.send({ cmd: 'sum' }, [1]))).rejects.toMatchObject({
        code: expect.any(String),
      });
      expect(ledger.served).toBe(served);
      await waitUntil(
        () => (server.node.stats()['dataPlane.dropped.refusedConnection'] ?? 0) >= 1,
        [server.node],
        ['warning'],
        5000,
        'the refusal to be counted',
      );
    },
  );

  it('rotates from key A to key B across three replicas with no failed request', async () => {
    let replicas = await Promise.all([1, 2, 3].map(() => replica({ key: keyA })));
    const results = { ok: 0, failed: [] as unknown[] };
    const progress = new EventEmitter();
    const drive = (proxy: KableClientProxy) => {
      let running = true;
      const loop = (async () => {
        while (running) {
          try {
            await firstValueFrom(proxy.send('who', {}));
            results.ok++;
            progress.emit('ok');
          } catch (error) {
            results.failed.push(error);
            if (results.failed.length > 1000) running = false; // failing for good: stop, and let the test say why
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
      })();
      return async () => {
        running = false;
        await loop;
      };
    };
    const oldClient = client({ key: keyA });
    await oldClient.whenServed('who', { count: 3 });
    const stopOld = drive(oldClient);
    const roll = async (security: Pick<KableOptions, 'key' | 'keys'>, watchers: KableClientProxy[]) => {
      for (let i = 0; i < replicas.length; i++) {
        const fresh = await replica(security);
        const old = replicas[i];
        replicas = replicas.map((r) => (r === old ? fresh : r));
        await old.app.close();
        apps.splice(apps.indexOf(old.app), 1);
        for (const watcher of watchers) await watcher.whenServed('who', { count: 3 });
        const before = results.ok;
        await waitUntil(() => results.ok > before + 20, [progress], ['ok'], 5000, 'traffic');
      }
    };
    await roll({ keys: [keyA, keyB] }, [oldClient]); // accept B, still speak A
    const newClient = client({ keys: [keyB, keyA] });
    await newClient.whenServed('who', { count: 3 });
    const stopNew = drive(newClient);
    await roll({ keys: [keyB, keyA] }, [oldClient, newClient]); // speak B, still accept A
    await stopOld();
    await roll({ key: keyB }, [newClient]); // A retired
    await stopNew();
    expect(results.failed).toEqual([]);
    expect(results.ok).toBeGreaterThan(100);
  }, 60_000);
});
