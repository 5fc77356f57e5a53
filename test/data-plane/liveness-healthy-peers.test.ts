import { afterEach, describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType, parseFrame } from '../../lib/data-plane/frames.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { waitForEvent } from '../support/events.js';

// What liveness must not take for a frozen peer: a healthy one that is busy reading this side's own large
// upload over a slow link, and one whose answer waits in the kernel while this side's loop was blocked.

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const UPLOAD = 4 * 1024 * 1024;

/** Listens on loopback; closed after the test, its connections first. */
function listening(server: net.Server): Promise<number> {
  const accepted: net.Socket[] = [];
  server.on('connection', (socket) => accepted.push(socket));
  closers.push(() => {
    accepted.forEach((socket) => socket.destroy());
    return new Promise((resolve) => server.close(resolve));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

/**
 * A slow link to `port`: what the caller sends is passed on one read (at most 64 KiB) per `every` ms, so
 * the caller's bytes keep leaving, slowly (the proxy holds no more than one read: the caller's kernel
 * buffers fill and its writes wait, as on a slow wire); answers come back at once.
 */
async function slowLink(port: number, every: number): Promise<number> {
  const outbound: net.Socket[] = [];
  closers.push(() => outbound.forEach((socket) => socket.destroy()));
  return listening(
    net.createServer((caller) => {
      const server = net.connect(port, '127.0.0.1');
      outbound.push(server);
      server.on('data', (chunk: Buffer) => caller.write(chunk));
      caller.on('data', (chunk: Buffer) => {
        server.write(chunk);
        caller.pause();
        setTimeout(() => caller.resume(), every);
      });
      caller.on('error', () => server.destroy());
      server.on('error', () => caller.destroy());
      caller.on('close', () => server.destroy());
      server.on('close', () => caller.destroy());
    }),
  );
}

interface Outcome {
  value?: unknown;
  error?: { code?: string; message?: string };
}

function send(connection: PeerConnection, data: unknown): Promise<Outcome> {
  return new Promise((resolve) => {
    let value: unknown;
    connection.request('upload', data, undefined, {
      next: (v) => (value = v),
      error: (error) => resolve({ error: error as Outcome['error'] }),
      complete: () => resolve({ value }),
    });
  });
}

describe('liveness leaves healthy peers alone', () => {
  it('a replica reading two large uploads over a slow link stays responsive, and its retiring connection lets them finish', async () => {
    const server = new DataPlaneServer({
      request: (request, reply) => reply.next((request.data as Uint8Array).byteLength, true),
      event: () => undefined,
      describe: () => ({ messages: [], events: [] }),
    });
    closers.push(() => server.close());
    const { port } = await server.listen('127.0.0.1', 0);
    // About 6 MB/s at most: the two uploads take over a second, several liveness windows of 250 ms.
    const linkPort = await slowLink(port, 10);
    const verdicts: boolean[] = [];
    const connection = new PeerConnection('127.0.0.1', linkPort, {
      liveness: { probeAfter: 50, answerWithin: 200 },
      onLiveness: (responsive) => verdicts.push(responsive),
    });
    closers.push(() => connection.close());
    const startedAt = performance.now();
    const uploads = [
      send(connection, new Uint8Array(UPLOAD)),
      send(connection, new Uint8Array(UPLOAD).fill(1)),
    ];
    // The peer left the cluster view meanwhile: its requests in flight may finish, unless it is
    // found unresponsive (then they fail as KABLE_PEER_LOST).
    connection.retire('left the cluster');
    const outcomes = await Promise.all(uploads);
    const took = performance.now() - startedAt;
    expect(outcomes).toEqual([{ value: UPLOAD }, { value: UPLOAD }]);
    expect(verdicts).toEqual([]);
    expect(connection.liveness!.lapses).toBe(0);
    // The link was slow enough to matter: the uploads outlasted the liveness window several times over.
    expect(took).toBeGreaterThan(4 * 250);
  });

  it('a replica that takes the first bytes of an upload and then reads no more is still found unresponsive', async () => {
    const port = await listening(
      net.createServer((socket) => {
        // A Kable server's hello, then its process freezes: nothing more is read (the kernel buffers fill).
        socket.write(new FrameWriter().encodeOne([FrameType.HELLO, { max: 64 * 1024 * 1024 }]));
        socket.pause();
      }),
    );
    const verdicts = new EventEmitter<{ verdict: [boolean] }>();
    const connection = new PeerConnection('127.0.0.1', port, {
      liveness: { probeAfter: 50, answerWithin: 200 },
      onLiveness: (responsive) => verdicts.emit('verdict', responsive),
    });
    closers.push(() => connection.close());
    const upload = send(connection, new Uint8Array(4 * UPLOAD));
    await waitForEvent(verdicts, 'verdict', (responsive: boolean) => !responsive, 5000);
    expect(connection.responsive).toBe(false);
    connection.close();
    expect((await upload).error?.code).toBe('KABLE_PEER_LOST');
  });

  it("a caller blocked past the hello's window right after connecting reads the hello waiting for it and keeps the connection", async () => {
    const window = 30 + 60;
    // Both ends are in this process: the block starts once the server has written its hello (into the
    // caller's kernel buffer) and the caller has started waiting for it, whichever comes last.
    let ready = 0;
    const blockWhenBothReady = (): void => {
      if (++ready < 2) return;
      process.nextTick(() => {
        const until = performance.now() + 4 * window;
        while (performance.now() < until) {
          // The caller's event loop is blocked (a long synchronous task just after connecting).
        }
      });
    };
    const port = await listening(
      net.createServer((socket) => {
        socket.write(new FrameWriter().encodeOne([FrameType.HELLO, { max: 16 * 1024 * 1024 }]));
        blockWhenBothReady();
        // Answers each request with its pattern.
        const decoder = new FrameDecoder(16 * 1024 * 1024);
        const replies = new FrameWriter();
        socket.on('data', (chunk: Buffer) =>
          decoder.push(chunk, (value) => {
            const frame = parseFrame(value);
            if (frame?.type === FrameType.REQUEST)
              socket.write(replies.encodeOne([FrameType.NEXT, frame.id, frame.pattern, true]));
          }),
        );
      }),
    );
    const connection = new PeerConnection('127.0.0.1', port, {
      liveness: { probeAfter: 30, answerWithin: 60 },
      connectTimeout: 60_000, // only the liveness window could end the wait
      connect: (host, port) => {
        const socket = net.connect({ host, port });
        // Runs after PeerConnection's own 'connect' listener (registered after this one) has sent the
        // hello and armed the window.
        socket.once('connect', () => process.nextTick(blockWhenBothReady));
        return socket;
      },
    });
    closers.push(() => connection.close());
    const outcome = await new Promise<Outcome>((resolve) =>
      connection.request('echo', 1, undefined, {
        next: (value) => resolve({ value }),
        error: (error) => resolve({ error: error as Outcome['error'] }),
        complete: () => undefined,
      }),
    );
    expect(ready).toBe(2);
    expect(outcome).toEqual({ value: 'echo' });
    expect(connection.status).toBe('open');
  });
});
