import { afterEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import net from 'node:net';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameType, LAST_FRAME_TYPE, parseFrame } from '../../lib/data-plane/frames.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import type { KableWarning } from '../../lib/node/errors.js';
import { PROTOCOL_VERSION } from '../../lib/node/protocol-version.js';
import { codecBytes, frameValue } from '../support/msgpack-arbitraries.js';

// Within one major version, a frame of a type this build does not know (a later minor's) is ignored and
// counted on both sides, the connection carries on; a peer of another major is refused before any
// request reaches it.

const servers: DataPlaneServer[] = [];
const connections: PeerConnection[] = [];
const sockets: net.Socket[] = [];
const listeners: net.Server[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await Promise.all(listeners.splice(0).map((listener) => new Promise((resolve) => listener.close(resolve))));
});

const ours = [PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor];
const newerMinor = [PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor + 1];
const nextMajor = [PROTOCOL_VERSION.major + 1, 0];

/** A frame of a type no build knows yet, with whatever fields a later minor may give it. */
const unknownFrame = fc
  .tuple(fc.integer({ min: LAST_FRAME_TYPE + 1, max: 0xffffffff }), fc.array(frameValue, { maxLength: 5 }))
  .map(([type, fields]) => [type, ...fields]);

async function echoServer(): Promise<{ server: DataPlaneServer; port: number; warnings: KableWarning[] }> {
  const warnings: KableWarning[] = [];
  const server = new DataPlaneServer({
    request: (request, reply) => reply.next(request.data, true),
    event: () => undefined,
    describe: () => ({ messages: ['echo'], events: [] }),
  });
  server.on('warning', (warning) => warnings.push(warning));
  servers.push(server);
  const { port } = await server.listen('127.0.0.1', 0);
  return { server, port, warnings };
}

/** A raw client: writes what it is given, and hands out every frame it reads, decoded. */
async function rawClient(port: number): Promise<{
  socket: net.Socket;
  frames: unknown[][];
  next: (accept: (frame: unknown[]) => boolean) => Promise<unknown[]>;
  closed: Promise<unknown>;
}> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => undefined);
  const frames: unknown[][] = [];
  const waiting: Array<{ accept: (frame: unknown[]) => boolean; resolve: (frame: unknown[]) => void }> = [];
  const decoder = new FrameDecoder(1 << 24);
  socket.on('data', (chunk: Buffer) =>
    decoder.push(chunk, (value) => {
      const frame = value as unknown[];
      frames.push(frame);
      const at = waiting.findIndex((w) => w.accept(frame));
      if (at >= 0) waiting.splice(at, 1)[0].resolve(frame);
    }),
  );
  const closed = new Promise((resolve) => socket.once('close', resolve));
  await new Promise((resolve) => socket.once('connect', resolve));
  const next = (accept: (frame: unknown[]) => boolean) =>
    new Promise<unknown[]>((resolve, reject) => {
      const found = frames.find(accept);
      if (found !== undefined) return resolve(found);
      waiting.push({ accept, resolve });
      void closed.then(() => reject(new Error('the server closed the connection')));
    });
  return { socket, frames, next, closed };
}

describe('frame types', () => {
  it('tells a well-formed frame of an unknown type from a malformed one', () => {
    expect(parseFrame([LAST_FRAME_TYPE + 1])).toEqual({ type: 'unknown', frameType: LAST_FRAME_TYPE + 1 });
    expect(parseFrame([0xffffffff, 'x', { y: 1 }])).toEqual({ type: 'unknown', frameType: 0xffffffff });
    for (const malformed of [
      [],
      [0, 1],
      [-1, 1],
      [1.5, 1],
      ['13', 1],
      [null],
      [0x100000000, 1],
      [FrameType.CANCEL],
    ])
      expect(parseFrame(malformed)).toBeUndefined();
  });

  it('reads a hello of a newer minor, ignoring the keys it does not know; refuses a malformed version', () => {
    expect(parseFrame([FrameType.HELLO, { max: 10, v: newerMinor, zone: 'a', extra: [1, 2] }])).toEqual({
      type: FrameType.HELLO,
      caller: undefined,
      maxFrameSize: 10,
      version: { major: newerMinor[0], minor: newerMinor[1] },
    });
    for (const v of [[1], [1, 2, 3], ['1', 0], [1, -1], [1, 0.5], [0x10000, 0], 'v1.0', null])
      expect(parseFrame([FrameType.HELLO, { v }])).toBeUndefined();
  });
});

describe('a server, sent frames of unknown types within its major version', () => {
  it('ignores and counts every one, and answers the requests around them on the same connection', async () => {
    const { server, port } = await echoServer();
    const client = await rawClient(port);
    client.socket.write(codecBytes([FrameType.HELLO, { id: 'caller', iid: 'caller-1', v: newerMinor }]));
    let id = 0;
    let unknownSent = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(unknownFrame, { minLength: 1, maxLength: 5 }), async (unknown) => {
        id++;
        // Unknown frames before and after the request, in one write: the request is still served.
        const half = Math.ceil(unknown.length / 2);
        client.socket.write(
          Buffer.concat([
            ...unknown.slice(0, half).map(codecBytes),
            codecBytes([FrameType.REQUEST, id, 'echo', id]),
            ...unknown.slice(half).map(codecBytes),
          ]),
        );
        unknownSent += unknown.length;
        const reply = await client.next((frame) => frame[0] === FrameType.NEXT && frame[1] === id);
        expect(reply).toEqual([FrameType.NEXT, id, id, true]);
      }),
      { numRuns: 200 },
    );
    // The last unknown frames followed the last request: a PING after them tells when they were read.
    client.socket.write(codecBytes([FrameType.PING, 7]));
    await client.next((frame) => frame[0] === FrameType.PONG);
    const stats = server.stats();
    expect(stats.unknownFrames).toBe(unknownSent);
    expect(Object.keys(stats).filter((name) => name.startsWith('dropped.'))).toEqual([]);
    expect(stats.openConnections).toBe(1);
    expect(stats.requests).toBe(200);
  });

  it('says its version in its hello', async () => {
    const { port } = await echoServer();
    const client = await rawClient(port);
    const hello = await client.next((frame) => frame[0] === FrameType.HELLO);
    expect((hello[1] as { v: unknown }).v).toEqual(ours);
  });

  it('closes a connection whose hello states another major version before serving anything, with a warning', async () => {
    const { server, port, warnings } = await echoServer();
    const client = await rawClient(port);
    client.socket.write(
      Buffer.concat([
        codecBytes([FrameType.HELLO, { id: 'caller', iid: 'caller-2', v: nextMajor }]),
        codecBytes([FrameType.REQUEST, 1, 'echo', 'x']),
      ]),
    );
    await client.closed;
    expect(server.stats()['dropped.incompatibleVersion']).toBe(1);
    expect(server.stats().requests).toBe(0);
    expect(warnings.map((w) => w.message)).toEqual([
      expect.stringContaining(
        `the caller speaks protocol v${nextMajor[0]}.0, this server v${ours[0]}.${ours[1]}`,
      ) as unknown as string,
    ]);
  });
});

/** A hand-made server: sends `hello`, then answers each REQUEST with `before` frames and its echo. */
async function rawServer(
  hello: Record<string, unknown>,
  before: () => unknown[][],
): Promise<{ port: number; received: unknown[][]; ended: Promise<unknown> }> {
  const received: unknown[][] = [];
  let closed: (value: unknown) => void;
  const ended = new Promise((resolve) => (closed = resolve));
  const listener = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('close', () => closed(undefined));
    socket.on('error', () => undefined);
    socket.write(codecBytes([FrameType.HELLO, hello]));
    const decoder = new FrameDecoder(1 << 24);
    socket.on('data', (chunk: Buffer) =>
      decoder.push(chunk, (value) => {
        const frame = value as unknown[];
        received.push(frame);
        if (frame[0] !== FrameType.REQUEST) return;
        socket.write(
          Buffer.concat([
            ...before().map(codecBytes),
            codecBytes([FrameType.NEXT, frame[1], frame[3], true]),
          ]),
        );
      }),
    );
  });
  listeners.push(listener);
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  return { port: (listener.address() as net.AddressInfo).port, received, ended };
}

function call(connection: PeerConnection, data: unknown): Promise<unknown> {
  return new Promise((resolve, reject) =>
    connection.request('echo', data, undefined, { next: resolve, error: reject, complete: () => undefined }),
  );
}

describe('a client, sent frames of unknown types within its major version', () => {
  it('ignores and counts every one, and its requests are answered on the same connection', async () => {
    let pending: unknown[][] = [];
    const { port } = await rawServer({ max: 1 << 20, v: newerMinor, extra: 'a newer key' }, () => pending);
    let unknownSeen = 0;
    const connection = new PeerConnection('127.0.0.1', port, {
      liveness: false,
      onUnknownFrame: () => unknownSeen++,
    });
    connections.push(connection);
    let unknownSent = 0;
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(unknownFrame, { minLength: 1, maxLength: 5 }), async (unknown) => {
        pending = unknown;
        unknownSent += unknown.length;
        expect(await call(connection, ++n)).toBe(n);
      }),
      { numRuns: 200 },
    );
    expect(unknownSeen).toBe(unknownSent);
    expect(connection.closed).toBe(false);
  });

  it('sends its version in its hello', async () => {
    const { port, received } = await rawServer({ max: 1 << 20, v: ours }, () => []);
    const connection = new PeerConnection('127.0.0.1', port, { liveness: false });
    connections.push(connection);
    await call(connection, 1);
    expect((received[0][1] as { v: unknown }).v).toEqual(ours);
  });

  it('sends nothing but its hello to a server of another major: requests fail at once, retryable, naming both versions', async () => {
    const { port, received, ended } = await rawServer({ max: 1 << 20, v: nextMajor }, () => []);
    const connection = new PeerConnection('127.0.0.1', port, { liveness: false });
    connections.push(connection);
    const failure = (await call(connection, 1).catch((error: unknown) => error)) as {
      code: string;
      retryable: boolean;
      message: string;
    };
    expect(failure.code).toBe('KABLE_PEER_UNREACHABLE');
    expect(failure.retryable).toBe(true);
    expect(failure.message).toContain(
      `the server speaks protocol v${nextMajor[0]}.0, this caller v${ours[0]}.${ours[1]}`,
    );
    expect(connection.closed).toBe(true);
    await ended;
    expect(received.map((frame) => frame[0])).toEqual([FrameType.HELLO]);
  });
});
