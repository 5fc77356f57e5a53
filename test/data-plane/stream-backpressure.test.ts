import { afterEach, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType } from '../../lib/data-plane/frames.js';

const KiB = 1024;
const servers: DataPlaneServer[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe('stream back-pressure', () => {
  it("a stream to a caller that stops reading is cut at maxStreamBacklog: the server's buffered bytes stay bounded, the handler is unsubscribed, the caller learns why", async () => {
    const VALUE = 16 * KiB;
    const TOTAL = 4096; // 64 MiB if nothing stopped it
    const LIMIT = 1024 * KiB;
    let emitted = 0;
    let stop!: () => void;
    // The handler stops: unsubscribed (cut), or done emitting (nothing cut it).
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const server = new DataPlaneServer(
      {
        request(_request, reply) {
          // An Observable-like producer that emits a value per turn of the loop until unsubscribed.
          let running = true;
          const value = Buffer.alloc(VALUE, 3);
          const emit = () => {
            if (!running || reply.closed) return;
            if (emitted === TOTAL) {
              reply.complete();
              return stop();
            }
            emitted++;
            reply.next(value);
            setImmediate(emit);
          };
          emit();
          return () => {
            running = false;
            stop();
          };
        },
        event: () => undefined,
        describe: () => ({ messages: [], events: [] }),
      },
      { writeHighWaterMark: 64 * KiB, maxStreamBacklog: LIMIT },
    );
    servers.push(server);
    const { port } = await server.listen('127.0.0.1', 0);
    const socket = net.connect(port, '127.0.0.1');
    sockets.push(socket);
    socket.pause(); // the caller stops reading at once
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(new FrameWriter().encodeOne([FrameType.REQUEST, 1, 'download', null]));
    await stopped;

    const stats = server.stats();
    expect(stats.cutStreams).toBe(1);
    expect(emitted).toBeLessThan(TOTAL / 4);
    // What the server holds for this caller: the limit plus one frame, and the error frame.
    expect(stats.peakConnectionBacklog).toBeLessThanOrEqual(LIMIT + VALUE + 1024);
    expect(stats.bufferedBytes).toBeLessThanOrEqual(LIMIT + VALUE + 1024);

    // Reading again, the caller gets every value emitted, then the error that says why it stopped.
    const decoder = new FrameDecoder(1024 * KiB);
    const frames: unknown[][] = [];
    const ended = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk, (value) => frames.push(value as unknown[]));
        if (frames.at(-1)?.[0] === FrameType.ERROR) resolve();
      });
    });
    socket.resume();
    await ended;
    const values = frames.filter((frame) => frame[0] === FrameType.NEXT);
    expect(values).toHaveLength(emitted - 1); // the value that found the backlog full was not sent
    expect(frames.at(-1)).toEqual([
      FrameType.ERROR,
      1,
      expect.objectContaining({
        code: 'KABLE_BACKPRESSURE',
        message: expect.stringContaining('maxStreamBacklog'),
      }),
    ]);
  });
});
