import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType } from '../../lib/data-plane/frames.js';
import { PeerConnection, type ReplyObserver } from '../../lib/data-plane/peer-connection.js';
import { secureChannel } from '../../lib/data-plane/secure-channel.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { waitForEvent } from '../support/events.js';

// Short timings so the tests are quick; the detector's logic is tested with fake timers in
// peer-liveness.test.ts, this checks the wire: PING out, PONG back from a real server's event loop.
const FAST = { probeAfter: 30, answerWithin: 60 };

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const observer = (): ReplyObserver & { errors: unknown[]; values: unknown[] } => {
  const errors: unknown[] = [];
  const values: unknown[] = [];
  return { errors, values, next: (v) => values.push(v), error: (e) => errors.push(e), complete: () => {} };
};

function connect(port: number) {
  const verdicts = new EventEmitter<{ verdict: [boolean] }>();
  const connection = new PeerConnection('127.0.0.1', port, {
    liveness: FAST,
    onLiveness: (responsive) => verdicts.emit('verdict', responsive),
  });
  closers.push(() => connection.close());
  return { connection, verdicts };
}

/**
 * What a frozen process looks like to a new connection: the kernel accepts it, nobody answers (neither a
 * hello nor a TLS handshake). Returns its port.
 */
async function muteServer(): Promise<number> {
  const sockets: net.Socket[] = [];
  const mute = net.createServer((socket) => {
    sockets.push(socket);
    socket.resume();
  });
  closers.push(() => new Promise((resolve) => mute.close(resolve)));
  closers.push(() => sockets.forEach((s) => s.destroy()));
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  return (mute.address() as net.AddressInfo).port;
}

describe('data-plane liveness on the wire', () => {
  it('a server busy with a slow request answers PINGs and stays responsive', async () => {
    const server = new DataPlaneServer({
      request: () => undefined, // never answers: a long-running handler
      event: () => undefined,
      describe: () => ({ messages: [], events: [] }),
    });
    closers.push(() => server.close());
    const { port } = await server.listen('127.0.0.1', 0);
    const { connection, verdicts } = connect(port);
    const seen: boolean[] = [];
    verdicts.on('verdict', (v) => seen.push(v));
    connection.request('slow', 1, undefined, observer());
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(connection.liveness!.pingsSent).toBeGreaterThanOrEqual(3);
    expect(seen).toEqual([]);
    expect(connection.responsive).toBe(true);
  });

  it('a peer that accepts and reads but never answers turns unresponsive; its first word brings it back', async () => {
    const sockets: net.Socket[] = [];
    const hole = net.createServer((socket) => {
      sockets.push(socket);
      // Says hello as a Kable server does (its frame limit), then reads (the kernel ACKs) and answers nothing.
      socket.write(new FrameWriter().encodeOne([FrameType.HELLO, { max: 16 * 1024 * 1024 }]));
      socket.resume();
    });
    closers.push(() => new Promise((resolve) => hole.close(resolve)));
    closers.push(() => sockets.forEach((s) => s.destroy()));
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    const { connection, verdicts } = connect((hole.address() as net.AddressInfo).port);
    const pending = observer();
    connection.request('who', {}, undefined, pending);
    await waitForEvent(verdicts, 'verdict', (v: boolean) => v === false, 2000);
    expect(connection.responsive).toBe(false);
    // Requests already on it keep waiting: the pause may end.
    expect(pending.errors).toEqual([]);
    const back = waitForEvent(verdicts, 'verdict', (v: boolean) => v === true, 2000);
    sockets[0].write(new FrameWriter().encodeOne([FrameType.PONG, 1]));
    await back;
    expect(connection.responsive).toBe(true);
  });

  it('a server that accepts but never says hello fails the waiting requests as unreachable within the liveness window', async () => {
    const connection = new PeerConnection('127.0.0.1', await muteServer(), {
      liveness: FAST,
      connectTimeout: 60_000, // far beyond the test's bound: only the liveness window can end the wait
    });
    closers.push(() => connection.close());
    const failed = new EventEmitter<{ error: [unknown] }>();
    connection.request('who', {}, undefined, { ...observer(), error: (e) => failed.emit('error', e) });
    const [error] = (await waitForEvent(failed, 'error', undefined, 3000)) as [
      { code: string; retryable: boolean; message: string },
    ];
    expect(error).toMatchObject({ code: 'KABLE_PEER_UNREACHABLE', retryable: true });
    expect(error.message).toMatch(/no hello from the server within 90 ms/);
  });

  it('over TLS, a server that accepts but never answers the handshake fails the waiting requests within the liveness window', async () => {
    const channel = secureChannel({ keys: [randomBytes(32)], namespace: 'default' });
    const connection = new PeerConnection('127.0.0.1', await muteServer(), {
      liveness: FAST,
      connect: channel.connect,
      connectTimeout: 60_000, // far beyond the test's bound: only the liveness window can end the wait
    });
    closers.push(() => connection.close());
    const failed = new EventEmitter<{ error: [unknown] }>();
    connection.request('who', {}, undefined, { ...observer(), error: (e) => failed.emit('error', e) });
    const [error] = (await waitForEvent(failed, 'error', undefined, 3000)) as [
      { code: string; retryable: boolean; message: string },
    ];
    expect(error).toMatchObject({ code: 'KABLE_PEER_UNREACHABLE', retryable: true });
    expect(error.message).toMatch(/no TLS handshake from the server within 90 ms/);
  });

  it('KableClientProxy checks its liveness option', () => {
    expect(() => new KableClientProxy({ liveness: { probeAfter: 0 } })).toThrow(
      /"liveness.probeAfter" must be a whole number of ms from 10/,
    );
    expect(() => new KableClientProxy({ liveness: { answerWithin: 2 ** 31 } })).toThrow(
      /"liveness.answerWithin"/,
    );
    expect(() => new KableClientProxy({ liveness: { probe: 100 } as never })).toThrow(
      /has no field "probe"; it accepts probeAfter, answerWithin/,
    );
    expect(() => new KableClientProxy({ liveness: true as never })).toThrow(/must be false or/);
  });
});
