import { afterEach, describe, expect, it, jest } from '@jest/globals';
import net from 'node:net';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { CALLER_SLICE_FRAMES, FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType } from '../../lib/data-plane/frames.js';
import { PROTOCOL_VERSION, versionToArray } from '../../lib/node/protocol-version.js';
import { recordingSocket } from '../support/recording-socket.js';

const tick = () => new Promise((resolve) => process.nextTick(resolve));
const BURST = 100;

afterEach(() => {
  jest.restoreAllMocks();
});

describe('how a burst of frames is cut into writes', () => {
  it("a caller's writer sends a burst in slices, so the server starts before the burst ends", async () => {
    const writer = new FrameWriter();
    const { socket, chunks } = recordingSocket();
    writer.attach(socket);
    for (let id = 0; id < BURST; id++) writer.write([FrameType.REQUEST, id, 'sum', [1, 2, 3]]);
    // The full slices left during the burst; the rest leaves at the end of the tick.
    expect(chunks).toHaveLength(Math.floor(BURST / CALLER_SLICE_FRAMES));
    await tick();
    expect(chunks).toHaveLength(Math.ceil(BURST / CALLER_SLICE_FRAMES));
  });

  it("a server's writer sends what a tick produced in one write", async () => {
    const writer = new FrameWriter(Infinity);
    const { socket, chunks } = recordingSocket();
    writer.attach(socket);
    for (let id = 0; id < BURST; id++) writer.write([FrameType.NEXT, id, id * 2, true]);
    expect(chunks).toHaveLength(0);
    await tick();
    expect(chunks).toHaveLength(1);
  });

  it('a data-plane server answers requests that arrived in one read with one write', async () => {
    const server = new DataPlaneServer({
      request: (request, reply) => reply.next((request.data as number) * 2, true),
      event: () => undefined,
      describe: () => ({ messages: [], events: [] }),
    });
    const { port } = await server.listen('127.0.0.1', 0);
    const client = net.connect(port, '127.0.0.1');
    try {
      const encoder = new FrameWriter();
      const serverHello = encoder.encodeOne([
        FrameType.HELLO,
        { max: server.maxFrameSize, v: versionToArray(PROTOCOL_VERSION) },
      ]);
      const replies = Array.from({ length: BURST }, (_, id) =>
        encoder.encodeOne([FrameType.NEXT, id, id * 2, true]),
      );
      const expected = Buffer.concat([serverHello, ...replies]);
      const received: Buffer[] = [];
      let bytes = 0;
      const receivedUpTo = (count: number) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (bytes < count) return;
            client.off('data', check);
            resolve();
          };
          client.on('data', check);
        });
      client.on('data', (chunk: Buffer) => {
        received.push(chunk);
        bytes += chunk.length;
      });
      // The server's hello first, so that only replies are counted below.
      await receivedUpTo(serverHello.length);
      const writes = jest.spyOn(net.Socket.prototype, 'write');
      const hello = encoder.encodeOne([FrameType.HELLO, { id: 'test', iid: 'test-1' }]);
      const requests = Array.from({ length: BURST }, (_, id) =>
        encoder.encodeOne([FrameType.REQUEST, id, 'double', id]),
      );
      // One write of the whole burst: on loopback the server reads it at once.
      client.write(Buffer.concat([hello, ...requests]));
      await receivedUpTo(expected.length);
      const serverWrites = writes.mock.contexts.filter((socket) => socket !== client);
      expect(serverWrites).toHaveLength(1);
      expect(Buffer.concat(received).equals(expected)).toBe(true);
    } finally {
      client.destroy();
      await server.close();
    }
  });
});
