import { afterEach, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import type { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { PeerConnection, type ReplyObserver } from '../../lib/data-plane/peer-connection.js';
import { echoServer } from '../support/echo-server.js';

// The data plane's limits, each over real TCP on loopback.
const servers: Array<{ close(): unknown }> = [];
const connections: PeerConnection[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const MiB = 1024 * 1024;

function start(options: ConstructorParameters<typeof DataPlaneServer>[1] = {}) {
  return echoServer(servers, options);
}

/**
 * A peer that says hello as a server does (largest frame 16 MiB) and then never reads: whatever the
 * client sends piles up in the kernel's buffers, then in the client.
 */
async function deafServer(): Promise<{ port: number; received: () => number }> {
  let received = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.write(new FrameWriter().encodeOne([10, { id: 'deaf', iid: 'deaf', max: 16 * MiB }]));
    // Reads the client's hello, then stops reading for good.
    socket.once('data', (chunk: Buffer) => {
      received += chunk.length;
      socket.pause();
    });
  });
  servers.push({
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, received: () => received };
}

function connect(port: number, options = {}): PeerConnection {
  const connection = new PeerConnection('127.0.0.1', port, options);
  connections.push(connection);
  return connection;
}

function call(connection: PeerConnection, pattern: string, data: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const observer: ReplyObserver = { next: resolve, error: reject, complete: () => resolve(undefined) };
    connection.request(pattern, data, undefined, observer);
  });
}

function settle(promise: Promise<unknown>): Promise<{ ok: boolean; error?: any }> {
  return promise.then(
    () => ({ ok: true }),
    (error: unknown) => ({ ok: false, error }),
  );
}

describe('payload size limits', () => {
  it('a request over the server limit fails alone, before it is sent; the connection carries on', async () => {
    const { server, port } = await start({ maxFrameSize: 1 * MiB });
    const connection = connect(port);
    const big = settle(call(connection, 'echo', Buffer.alloc(2 * MiB, 1)));
    const small = call(connection, 'echo', 'small');
    const [failed, answer] = await Promise.all([big, small]);
    expect(answer).toBe('small');
    expect(failed.error).toMatchObject({ code: 'KABLE_PAYLOAD_TOO_LARGE', retryable: false });
    expect(failed.error.message).toMatch(
      /"echo" not sent: it is 2097\d{3} bytes encoded, over the 1048576-byte limit/,
    );
    // Now the limit is known: checked before queuing.
    await expect(call(connection, 'echo', Buffer.alloc(2 * MiB))).rejects.toMatchObject({
      code: 'KABLE_PAYLOAD_TOO_LARGE',
    });
    expect(await call(connection, 'echo', 'after')).toBe('after');
    await expect(connection.sendEvent('noted', Buffer.alloc(2 * MiB))).rejects.toMatchObject({
      code: 'KABLE_PAYLOAD_TOO_LARGE',
    });
    expect(server.stats()).toMatchObject({ connections: 1, openConnections: 1 });
    expect(server.stats()['dropped.oversizedFrame']).toBeUndefined();
  });

  it('a reply over the caller limit becomes an error for that request alone', async () => {
    const { server, port } = await start();
    const connection = connect(port, { maxFrameSize: 1 * MiB });
    const [big, small] = await Promise.all([
      settle(call(connection, 'make', 2 * MiB)),
      call(connection, 'echo', 'small'),
    ]);
    expect(small).toBe('small');
    expect(big.error).toMatchObject({ code: 'KABLE_PAYLOAD_TOO_LARGE', limit: 1 * MiB });
    expect(big.error.message).toMatch(/reply to "make" is 2097\d{3} bytes, over the 1048576-byte limit/);
    expect(await call(connection, 'make', 1000)).toHaveLength(1000);
    expect(server.stats()).toMatchObject({ connections: 1, oversizedReplies: 1 });
  });
});

describe('queues toward one peer', () => {
  it('caps queued bytes: past maxQueuedBytes requests wait for room and events fail at once, retryable', async () => {
    const { port } = await deafServer();
    const connection = connect(port, { maxQueuedBytes: 2 * MiB });
    const payload = Buffer.alloc(256 * 1024, 1);
    const outcomes: Array<Promise<{ ok: boolean; error?: any }>> = [];
    let peak = 0;
    // Far more than the kernel buffers plus the cap: without a cap all of it would sit in memory.
    for (let i = 0; i < 400; i++) {
      outcomes.push(settle(call(connection, 'echo', payload)));
      peak = Math.max(peak, connection.queuedBytes);
      if (i % 8 === 7) await new Promise((resolve) => setImmediate(resolve));
    }
    // Encoded bytes never pass the cap (a few bytes of PINGs aside): the rest waits unencoded.
    expect(peak).toBeLessThanOrEqual(2 * MiB + 64);
    const { waitingForRoom, roomWaits } = connection.holding;
    expect(waitingForRoom).toBeGreaterThan(300);
    expect(roomWaits).toBeGreaterThanOrEqual(waitingForRoom);
    await expect(connection.sendEvent('noted', payload)).rejects.toMatchObject({
      code: 'KABLE_BACKPRESSURE',
      retryable: true,
      message: expect.stringMatching(/maxQueuedBytes 2097152\) and \d+ requests waiting for room/),
    });
    // Waiting requests were never sent: when the connection goes they fail as unreachable, retryable.
    connection.close();
    const settled = await Promise.all(outcomes);
    const unsent = settled.filter((outcome) => outcome.error?.code === 'KABLE_PEER_UNREACHABLE');
    expect(unsent.length).toBeGreaterThanOrEqual(waitingForRoom);
    expect(unsent.every((outcome) => outcome.error.retryable === true)).toBe(true);
    expect(connection.holding.waitingForRoom).toBe(0);
  });

  it('an event that cannot be sent fails with KABLE_TIMEOUT after eventTimeout, and leaves the queue', async () => {
    const { port } = await deafServer();
    const connection = connect(port, { eventTimeout: 300, maxQueuedBytes: 64 * MiB });
    // Fill the kernel's buffers and the socket's: later events stay queued. The first settles once handed
    // to the socket (a fixed 50 ms wait here was, on a loaded machine, before the connection opened, and
    // both events then left in one write).
    const first = await settle(connection.sendEvent('noted', Buffer.alloc(16 * MiB - 64)));
    expect(first).toMatchObject({ ok: true });
    const stuck = connection.sendEvent('noted', Buffer.alloc(1 * MiB));
    const queued = connection.queuedBytes;
    const outcome = await Promise.race([settle(stuck), timeout(3000)]);
    expect(outcome).toMatchObject({ ok: false, error: { code: 'KABLE_TIMEOUT' } });
    expect((outcome as { error: Error }).error.message).toMatch(/Event "noted" not sent/);
    expect(connection.queuedBytes).toBeLessThanOrEqual(queued - 1 * MiB);
  });

  it('a request cancelled before it was sent never reaches the server, and no CANCEL follows', async () => {
    const { server, port, held } = await start();
    const connection = connect(port);
    expect(await call(connection, 'echo', 'warm')).toBe('warm');
    const cancel = connection.request('hold', 1, undefined, {
      next: () => undefined,
      error: () => undefined,
      complete: () => undefined,
    });
    cancel();
    expect(await call(connection, 'echo', 'after')).toBe('after');
    expect(held).toHaveLength(0);
    expect(server.stats()).toMatchObject({ requests: 2, cancelled: 0 });
  });

  it('a request cancelled while the connection is still opening is never sent either', async () => {
    const { server, port } = await start();
    const connection = connect(port);
    const cancels = Array.from({ length: 5 }, (_, i) =>
      connection.request('hold', i, undefined, {
        next: () => undefined,
        error: () => undefined,
        complete: () => undefined,
      }),
    );
    // Opening takes a round trip: cancel after the hello was sent, before the server's came back.
    await new Promise((resolve) => setImmediate(resolve));
    for (const cancel of cancels) cancel();
    expect(await call(connection, 'echo', 'after')).toBe('after');
    expect(server.stats()).toMatchObject({ requests: 1, cancelled: 0 });
  });
});

function timeout(ms: number): Promise<'timed out'> {
  return new Promise((resolve) => setTimeout(() => resolve('timed out'), ms).unref());
}
