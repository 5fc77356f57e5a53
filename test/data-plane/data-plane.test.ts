import { afterEach, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import {
  DataPlaneServer,
  type DataPlaneHandler,
  type ReplyChannel,
} from '../../lib/data-plane/data-plane-server.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { PeerConnection, type ReplyObserver } from '../../lib/data-plane/peer-connection.js';
import { waitForEvent } from '../support/events.js';

const servers: DataPlaneServer[] = [];
const connections: PeerConnection[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

interface Recorder {
  cancelled: string[];
  events: Array<[string, unknown, unknown, unknown]>;
  open: Map<string, ReplyChannel>;
}

function handler(recorder: Recorder): DataPlaneHandler {
  return {
    request(request, reply) {
      const data = request.data as { mode?: string; value?: unknown };
      switch (request.pattern) {
        case 'echo':
          reply.next(
            { data: request.data, metadata: request.metadata ?? null, caller: request.caller ?? null },
            true,
          );
          return;
        case 'stream':
          for (let i = 1; i <= 3; i++) reply.next(i);
          reply.complete();
          return;
        case 'fail':
          reply.error({ status: 'error', message: 'raw payload', detail: data.value });
          return;
        case 'refuse':
          reply.refuse('node is STOPPED');
          return;
        case 'hold':
          recorder.open.set(String(data.value), reply);
          return () => recorder.cancelled.push(String(data.value));
        default:
          reply.error('unknown');
      }
    },
    event(pattern, data, metadata, caller) {
      recorder.events.push([pattern, data, metadata, caller]);
    },
    describe: () => ({ messages: ['echo', 'stream'], events: ['created'] }),
  };
}

async function start(options = {}): Promise<{ server: DataPlaneServer; port: number; recorder: Recorder }> {
  const recorder: Recorder = { cancelled: [], events: [], open: new Map() };
  const server = new DataPlaneServer(handler(recorder), options);
  servers.push(server);
  const { port } = await server.listen('127.0.0.1', 0);
  return { server, port, recorder };
}

function connect(port: number, options = {}): PeerConnection {
  const connection = new PeerConnection('127.0.0.1', port, options);
  connections.push(connection);
  return connection;
}

function call(
  connection: PeerConnection,
  pattern: string,
  data: unknown,
  metadata?: Record<string, unknown>,
) {
  return new Promise<unknown[]>((resolve, reject) => {
    const values: unknown[] = [];
    const observer: ReplyObserver = {
      next: (v) => values.push(v),
      error: reject,
      complete: () => resolve(values),
    };
    connection.request(pattern, data, metadata, observer);
  });
}

describe('data plane', () => {
  it('multiplexes many concurrent requests on one connection, with metadata and caller identity', async () => {
    const { port, server } = await start();
    const connection = connect(port, { hello: { id: 'gateway', iid: 'i-1' } });
    const replies = await Promise.all(
      Array.from({ length: 500 }, (_, i) => call(connection, 'echo', i, { trace: `t${i}` })),
    );
    replies.forEach((values, i) =>
      expect(values).toEqual([
        { data: i, metadata: { trace: `t${i}` }, caller: { id: 'gateway', iid: 'i-1' } },
      ]),
    );
    expect(server.stats().connections).toBe(1);
  });

  it('streams values, passes error payloads unchanged, and refuses as retryable', async () => {
    const { port } = await start();
    const connection = connect(port);
    expect(await call(connection, 'stream', {})).toEqual([1, 2, 3]);
    await expect(call(connection, 'fail', { value: 7 })).rejects.toEqual({
      status: 'error',
      message: 'raw payload',
      detail: 7,
    });
    await expect(call(connection, 'refuse', {})).rejects.toMatchObject({
      code: 'KABLE_REFUSED',
      retryable: true,
    });
  });

  it('cancels the handler when the caller cancels, and calls the observer no more', async () => {
    const { port, recorder, server } = await start();
    const connection = connect(port);
    const seen: unknown[] = [];
    const cancel = connection.request('hold', { value: 'a' }, undefined, {
      next: (v) => seen.push(v),
      error: (e) => seen.push(e),
      complete: () => seen.push('complete'),
    });
    await new Promise<void>((resolve) => {
      const check = () => (recorder.open.has('a') ? resolve() : setImmediate(check));
      check();
    });
    expect(server.inFlight).toBe(1);
    cancel();
    const idle = waitForEvent(server, 'idle');
    await idle;
    expect(recorder.cancelled).toEqual(['a']);
    recorder.open.get('a')!.next('too late');
    expect(seen).toEqual([]);
  });

  it('fails in-flight requests at once with KABLE_PEER_LOST when the server goes away', async () => {
    const { port, server, recorder } = await start();
    const connection = connect(port);
    const pending = [1, 2, 3].map((value) => call(connection, 'hold', { value }));
    await new Promise<void>((resolve) => {
      const check = () => (recorder.open.size === 3 ? resolve() : setImmediate(check));
      check();
    });
    await server.close();
    for (const request of pending)
      await expect(request).rejects.toMatchObject({ code: 'KABLE_PEER_LOST', retryable: false });
    expect(recorder.cancelled.sort()).toEqual(['1', '2', '3']);
  });

  it('reports a closed port as KABLE_PEER_UNREACHABLE, retryable, naming the pattern', async () => {
    const { port, server } = await start();
    await server.close();
    await expect(call(connect(port), 'echo', 1)).rejects.toMatchObject({
      code: 'KABLE_PEER_UNREACHABLE',
      retryable: true,
      message: expect.stringContaining('"echo"'),
    });
  });

  it('describes the patterns and delivers events with their caller', async () => {
    const { port, recorder } = await start();
    const connection = connect(port, { hello: { id: 'orders', iid: 'i-2' } });
    expect(await connection.describe(1000)).toEqual({ messages: ['echo', 'stream'], events: ['created'] });
    await connection.sendEvent('created', { n: 1 }, { trace: 'x' });
    await call(connection, 'echo', 0);
    expect(recorder.events).toEqual([['created', { n: 1 }, { trace: 'x' }, { id: 'orders', iid: 'i-2' }]]);
  });

  it('caps pending requests per connection', async () => {
    const { port } = await start();
    const connection = connect(port, { maxPending: 2 });
    void call(connection, 'hold', { value: 1 }).catch(() => undefined);
    void call(connection, 'hold', { value: 2 }).catch(() => undefined);
    await expect(call(connection, 'echo', 3)).rejects.toMatchObject({ code: 'KABLE_BACKPRESSURE' });
  });

  it('drain() resolves true when in-flight work ends and false on timeout', async () => {
    const { port, server, recorder } = await start();
    const connection = connect(port);
    const request = call(connection, 'hold', { value: 'd' });
    await new Promise<void>((resolve) => {
      const check = () => (recorder.open.has('d') ? resolve() : setImmediate(check));
      check();
    });
    expect(await server.drain(20)).toBe(false);
    const drained = server.drain(5000);
    recorder.open.get('d')!.complete();
    expect(await drained).toBe(true);
    await expect(request).resolves.toEqual([]);
  });

  describe('bad input', () => {
    const writer = new FrameWriter();
    const oversized = Buffer.from([0x00, 0x10, 0x00, 0x01]);
    const notMessagePack = Buffer.from([0, 0, 0, 2, 0xc1, 0xc1]);
    // Not a frame type at all (a well-formed frame of an unknown type is ignored: see protocol-versions).
    const unknownShape = writer.encodeOne(['what', 99]);
    const truncated = writer.encodeOne([1, 1, 'echo', 'x'.repeat(100)]).subarray(0, 50);

    it.each([
      ['a frame over maxFrameSize', oversized, 'dropped.oversizedFrame'],
      ['bytes that are not MessagePack', notMessagePack, 'dropped.notMessagePack'],
      ['a frame of unknown shape', unknownShape, 'dropped.unknownFrame'],
      ['a truncated frame', truncated, 'dropped.truncatedFrame'],
    ])(
      '%s closes that connection only, counted, while others keep working',
      async (_name, bytes, counter) => {
        const { port, server } = await start({ maxFrameSize: 1024 * 1024 });
        const good = connect(port);
        expect(await call(good, 'echo', 1)).toHaveLength(1);
        const warned = waitForEvent(server, 'warning');
        const raw = net.connect(port, '127.0.0.1');
        raw.on('error', () => undefined);
        raw.resume(); // the server's hello comes first
        await new Promise((resolve) => raw.once('connect', resolve));
        raw.end(bytes);
        await new Promise((resolve) => raw.once('close', resolve));
        await warned;
        expect(server.stats()[counter]).toBe(1);
        expect(await call(good, 'echo', 2)).toHaveLength(1);
      },
    );
  });
});
