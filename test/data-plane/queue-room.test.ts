import { afterEach, describe, expect, it } from '@jest/globals';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { PeerConnection, type ReplyObserver } from '../../lib/data-plane/peer-connection.js';

// A full queue toward a peer (maxQueuedBytes) means "wait for room", in order: over real TCP on loopback.
const servers: DataPlaneServer[] = [];
const connections: PeerConnection[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const KiB = 1024;
const MiB = 1024 * KiB;

/** A server that answers every request with its data's first byte, and lists them in arrival order. */
async function start(): Promise<{ server: DataPlaneServer; port: number; arrived: number[] }> {
  const arrived: number[] = [];
  const server = new DataPlaneServer({
    request(request, reply) {
      const tag = (request.data as Uint8Array)[0];
      arrived.push(tag);
      reply.next(tag, true);
    },
    event: () => undefined,
    describe: () => ({ messages: [], events: [] }),
  });
  servers.push(server);
  const { port } = await server.listen('127.0.0.1', 0);
  return { server, port, arrived };
}

function connect(port: number, options = {}): PeerConnection {
  const connection = new PeerConnection('127.0.0.1', port, options);
  connections.push(connection);
  return connection;
}

/** A request of `size` bytes tagged `tag`; `cancel` takes it back. */
function send(connection: PeerConnection, tag: number, size: number) {
  let cancel: () => void = () => undefined;
  let settledAt = -1;
  const reply = new Promise<unknown>((resolve, reject) => {
    const observer: ReplyObserver = { next: resolve, error: reject, complete: () => undefined };
    cancel = connection.request('tagged', Buffer.alloc(size, tag), undefined, observer);
  });
  void reply.then(
    () => (settledAt = 1),
    () => (settledAt = 0),
  );
  return { reply, cancel, settled: () => settledAt };
}

describe('a request that does not fit the queue', () => {
  it('waits for room, then is sent and answered: no refusal, nothing lost', async () => {
    const { port } = await start();
    const connection = connect(port, { maxQueuedBytes: 1 * MiB });
    // Sixteen requests of 300 KiB at once: three fit the 1 MiB queue, the rest wait for the socket to take them.
    const requests = Array.from({ length: 16 }, (_, i) => send(connection, i, 300 * KiB));
    expect(connection.holding.waitingForRoom).toBe(13);
    expect(connection.inFlight).toBe(16);
    expect(connection.hasRoom).toBe(false);
    expect(await Promise.all(requests.map((request) => request.reply))).toEqual(
      Array.from({ length: 16 }, (_, i) => i),
    );
    expect(connection.holding).toMatchObject({ pending: 0, waitingForRoom: 0, roomWaits: 13 });
    expect(connection.hasRoom).toBe(true);
  });

  it('waits in turn: a small request never passes a large one waiting before it', async () => {
    const { port, arrived } = await start();
    const connection = connect(port, { maxQueuedBytes: 1 * MiB });
    const sizes = [600 * KiB, 600 * KiB, 10, 600 * KiB, 10, 10, 900 * KiB, 10];
    const requests = sizes.map((size, tag) => send(connection, tag, size));
    // The first fits; the second does not, and everything after it waits behind it, the small ones too.
    expect(connection.holding.waitingForRoom).toBe(sizes.length - 1);
    await Promise.all(requests.map((request) => request.reply));
    expect(arrived).toEqual(sizes.map((_, tag) => tag));
  });

  it('leaves without a trace when cancelled while it waits: never sent, no CANCEL, the next one moves up', async () => {
    const { server, port, arrived } = await start();
    const connection = connect(port, { maxQueuedBytes: 1 * MiB });
    const first = send(connection, 0, 600 * KiB);
    const head = send(connection, 1, 600 * KiB);
    const middle = send(connection, 2, 600 * KiB);
    const last = send(connection, 3, 600 * KiB);
    expect(connection.holding.waitingForRoom).toBe(3);
    middle.cancel();
    head.cancel();
    expect(connection.holding.waitingForRoom).toBe(1);
    expect(connection.inFlight).toBe(2);
    expect(await Promise.all([first.reply, last.reply])).toEqual([0, 3]);
    expect(arrived).toEqual([0, 3]);
    // The cancelled ones were told nothing after their cancel, as a cancelled request never is.
    expect([head.settled(), middle.settled()]).toEqual([-1, -1]);
    expect(server.stats()).toMatchObject({ requests: 2, cancelled: 0 });
    expect(connection.holding).toMatchObject({ pending: 0, waitingForRoom: 0 });
  });

  it('whose data cannot be encoded fails alone when its turn comes; those behind it go on', async () => {
    const { port, arrived } = await start();
    const connection = connect(port, { maxQueuedBytes: 1 * MiB });
    const first = send(connection, 0, 600 * KiB);
    const second = send(connection, 1, 600 * KiB);
    // Waits behind the second, so it is encoded only when room comes: from a socket callback.
    const unencodable = new Promise((resolve, reject) => {
      connection.request('tagged', { id: 1n }, undefined, {
        next: resolve,
        error: reject,
        complete: () => undefined,
      });
    });
    const last = send(connection, 3, 10);
    expect(connection.holding.waitingForRoom).toBe(3);
    await expect(unencodable).rejects.toMatchObject({
      code: 'KABLE_UNENCODABLE',
      message: expect.stringContaining('(id: BigInt)'),
    });
    expect(await Promise.all([first.reply, second.reply, last.reply])).toEqual([0, 1, 3]);
    expect(arrived).toEqual([0, 1, 3]);
    expect(connection.holding).toMatchObject({ pending: 0, waitingForRoom: 0 });
  });

  it('fails at once, with its size and the cap, when it is larger than the whole queue', () => {
    const connection = connect(1, { maxQueuedBytes: 1 * MiB });
    let failure: any;
    connection.request('tagged', Buffer.alloc(2 * MiB), undefined, {
      next: () => undefined,
      complete: () => undefined,
      error: (error) => (failure = error),
    });
    // Synchronously, before any connection is made.
    expect(failure).toMatchObject({ code: 'KABLE_PAYLOAD_TOO_LARGE', retryable: false });
    expect(failure.message).toMatch(
      /^Request "tagged" not sent: it is 2097\d{3} bytes encoded, over the whole queue toward 127\.0\.0\.1:1 \(maxQueuedBytes 1048576\); raise maxQueuedBytes/,
    );
    expect(connection.holding).toMatchObject({ pending: 0, waitingForRoom: 0 });
  });
});
