import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Injectable, Module } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { PeerLanes } from '../../lib/data-plane/peer-lanes.js';
import { KableOptionsError } from '../../lib/node/errors.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { InProcessCluster } from './fixtures/in-process.js';

// Large uploads travel on a second connection to the server (lib/data-plane/peer-lanes.ts), so that a
// small request sent behind one is not stuck behind all of its bytes (head-of-line blocking).

/** The order in which the server's handlers ran. */
@Injectable()
class Arrivals {
  order: string[] = [];
}

@Controller()
class UploadController {
  constructor(private readonly arrivals: Arrivals) {}

  @MessagePattern('upload')
  upload(@Payload() data: Uint8Array): number {
    this.arrivals.order.push('upload');
    return data.byteLength;
  }

  @MessagePattern('ping')
  ping(): string {
    this.arrivals.order.push('ping');
    return 'pong';
  }

  @EventPattern('stored')
  stored(@Payload() data: string): void {
    this.arrivals.order.push(`stored ${data.length}`);
  }
}

@Module({ controllers: [UploadController], providers: [Arrivals] })
class UploadModule {}

const MiB = 1024 * 1024;

describe('the bulk lane', () => {
  const cluster = new InProcessCluster();
  afterEach(() => cluster.close());

  async function uploadThenPing(options: ConstructorParameters<typeof KableClientProxy>[0]) {
    const app = await cluster.service(UploadModule, 'files');
    const client = cluster.client({ target: 'files', ...options });
    await client.whenServed('ping');
    // Both connections open and warm, so that only the order of bytes decides what arrives first.
    await firstValueFrom(client.send('ping', {}));
    await firstValueFrom(client.send('upload', Buffer.alloc(300 * 1024)));
    app.get(Arrivals).order = [];
    const upload = firstValueFrom(client.send<number>('upload', Buffer.alloc(15 * MiB, 1)));
    const ping = firstValueFrom(client.send<string>('ping', {}));
    expect(await Promise.all([upload, ping])).toEqual([15 * MiB, 'pong']);
    return { order: app.get(Arrivals).order, stats: client.node.stats() };
  }

  it('lets a small request sent behind a 15 MiB upload be served before the upload has arrived', async () => {
    const { order, stats } = await uploadThenPing({});
    expect(order).toEqual(['ping', 'upload']);
    expect(stats['client.connectionsOpened']).toBe(2);
    expect(stats['client.bulkConnectionsOpened']).toBe(1);
  });

  it('with bulkThreshold false, sends everything on one connection, in order', async () => {
    const { order, stats } = await uploadThenPing({ bulkThreshold: false });
    expect(order).toEqual(['upload', 'ping']);
    expect(stats['client.connectionsOpened']).toBe(1);
    expect(stats['client.bulkConnectionsOpened']).toBe(0);
  });

  it('carries large string events too', async () => {
    const app = await cluster.service(UploadModule, 'files');
    const client = cluster.client({ target: 'files', bulkThreshold: 1024 });
    await client.whenServed('ping');
    await firstValueFrom(client.emit('stored', 'x'.repeat(2048)), { defaultValue: undefined });
    await firstValueFrom(client.send('ping', {}));
    expect(app.get(Arrivals).order).toEqual(['stored 2048', 'ping']);
    expect(client.node.stats()['client.bulkConnectionsOpened']).toBe(1);
  });
});

describe('PeerLanes.isBulk', () => {
  it('looks at a binary’s bytes and a string’s characters, from the threshold on', () => {
    const lanes = new PeerLanes({}, 1024);
    expect(lanes.isBulk(Buffer.alloc(1023))).toBe(false);
    expect(lanes.isBulk(Buffer.alloc(1024))).toBe(true);
    expect(lanes.isBulk(new Uint8Array(4096))).toBe(true);
    expect(lanes.isBulk('x'.repeat(1023))).toBe(false);
    expect(lanes.isBulk('x'.repeat(1024))).toBe(true);
    // Only the top level: an object holding a large binary stays in the ordinary lane.
    expect(lanes.isBulk({ blob: Buffer.alloc(4096) })).toBe(false);
    expect(new PeerLanes({}, false).isBulk(Buffer.alloc(16 * MiB))).toBe(false);
  });

  it('refuses a threshold that is not a byte size, saying what to write', () => {
    expect(() => new KableClientProxy({ bulkThreshold: 10 })).toThrow(KableOptionsError);
    expect(() => new KableClientProxy({ bulkThreshold: 10 })).toThrow(
      'KableClientProxy option "bulkThreshold" must be a whole number of bytes from 1024 to 4294967295; got 10.',
    );
    expect(() => new KableClientProxy({ bulkThreshold: true as never })).toThrow(/bulkThreshold/);
  });
});
