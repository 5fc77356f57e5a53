import { afterEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType, parseFrame } from '../../lib/data-plane/frames.js';
import { readNextFrame } from '../../lib/data-plane/next-frame.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { recordingSocket } from '../support/recording-socket.js';

const servers: DataPlaneServer[] = [];
const connections: PeerConnection[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const tick = () => new Promise((resolve) => process.nextTick(resolve));

/** What the codec itself writes for `frame`, length prefix included. */
function codecBytes(frame: unknown[]): Buffer {
  const body = new Encoder({ ignoreUndefined: true }).encode(frame);
  const out = Buffer.alloc(body.length + 4);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** Each MessagePack integer width, at and around its bounds. */
const bounds = [0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000];
const id = fc.oneof(
  fc.constantFrom(0, ...bounds.slice(0, -1)),
  fc.integer({ min: 0, max: 0x7f }),
  fc.integer({ min: 0x80, max: 0xffff }),
  fc.integer({ min: 0x10000, max: 0xffffffff }),
);
const value = fc.oneof(
  fc.constantFrom(
    ...bounds,
    ...[0x20, 0x21, 0x80, 0x81, 0x8000, 0x8001, 0x80000000, 0x80000001].map((n) => -n),
  ),
  fc.integer({ min: -0x80000000, max: 0xffffffff }),
  fc.integer({ min: -40_000, max: 40_000 }),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constant(-0),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 300 }),
  // Each binary header width, and the in-place size for large ones (made once: cheap to draw).
  fc.constantFrom(...[0, 255, 256, 65_535, 65_536, 70_000].map((size) => Buffer.alloc(size, size & 0xff))),
  fc.dictionary(fc.string(), fc.oneof(fc.integer(), fc.string())),
  fc.array(fc.integer()),
);

describe('NEXT frames (stream values and replies)', () => {
  it('are written byte for byte as the codec writes the same array', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(id, value, fc.boolean()), { maxLength: 20 }), async (frames) => {
        const writer = new FrameWriter();
        const { socket, chunks } = recordingSocket();
        writer.attach(socket);
        const arrays = frames.map(([frameId, v, last]) =>
          last ? [FrameType.NEXT, frameId, v, true] : [FrameType.NEXT, frameId, v],
        );
        const sizes = arrays.map((frame) => writer.write(frame));
        await tick();
        const expected = arrays.map(codecBytes);
        expect(sizes).toEqual(expected.map((bytes) => bytes.length));
        expect(Buffer.concat(chunks).equals(Buffer.concat(expected))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('are read as the codec reads them, whatever the bytes (a frame the reader is unsure of is left to the codec)', () => {
    const encoder = new Encoder();
    const decoder = new Decoder();
    const frame = fc.oneof(
      fc.tuple(id, value).map(([i, v]) => [FrameType.NEXT, i, v]),
      fc.tuple(id, value).map(([i, v]) => [FrameType.NEXT, i, v, true]),
      fc.tuple(id, value, value).map(([i, v, w]) => [FrameType.NEXT, i, v, w]),
      fc.tuple(id, value).map(([i, v]) => [FrameType.ERROR, i, v]),
    );
    const damage = fc.oneof(
      fc.constant((bytes: Buffer) => bytes),
      fc.nat().map((n) => (bytes: Buffer) => bytes.subarray(0, n % (bytes.length + 1))),
      fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([n, byte]) => (bytes: Buffer) => {
        const copy = Buffer.from(bytes);
        if (copy.length > 0) copy[n % copy.length] = byte;
        return copy;
      }),
      fc.uint8Array({ minLength: 1, maxLength: 4 }).map((extra) => (bytes: Buffer) => {
        return Buffer.concat([bytes, extra]);
      }),
    );
    fc.assert(
      fc.property(frame, damage, fc.nat(8), (array, harm, pad) => {
        // Somewhere inside a larger buffer, as in a received chunk.
        const body = harm(Buffer.from(encoder.encode(array)));
        const bytes = Buffer.concat([Buffer.alloc(pad, 0xc1), body, Buffer.alloc(3, 0xc1)]);
        let read: { id: number; value: unknown; last: boolean } | undefined;
        const took = readNextFrame(bytes, pad, pad + body.length, (i, v, last) => {
          read = { id: i, value: v, last };
        });
        expect(took).toBe(read !== undefined);
        if (!took) return;
        const parsed = parseFrame(decoder.decode(body));
        expect(parsed).toEqual({ type: FrameType.NEXT, ...read });
      }),
      { numRuns: 1000 },
    );
  });

  it("a stream's small values written in one tick leave in one write per 16 KiB, not one per 32 values", async () => {
    const writer = new FrameWriter();
    const { socket, chunks } = recordingSocket();
    writer.attach(socket);
    for (let i = 0; i < 1000; i++) writer.write([FrameType.NEXT, 7, i]);
    await tick();
    expect(chunks).toHaveLength(1);
    for (let i = 0; i < 10_000; i++) writer.write([FrameType.NEXT, 7, i]);
    writer.write([FrameType.NEXT, 7, 'end', true]);
    await tick();
    const bytes = chunks.slice(1).reduce((sum, chunk) => sum + chunk.length, 0);
    expect(chunks.length - 1).toBeLessThanOrEqual(Math.ceil(bytes / (16 * 1024)) + 1);
    const values: unknown[] = [];
    const decoder = new FrameDecoder(1024 * 1024);
    for (const chunk of chunks) decoder.push(chunk, (frame) => values.push((frame as unknown[])[2]));
    expect(values).toEqual([
      ...Array.from({ length: 1000 }, (_, i) => i),
      ...Array.from({ length: 10_000 }, (_, i) => i),
      'end',
    ]);
  });

  it('large values written one per tick: each in place, their headers in one buffer of the writer, not a new one per write', async () => {
    const writer = new FrameWriter();
    const { socket, chunks } = recordingSocket();
    writer.attach(socket);
    const value = Buffer.alloc(64 * 1024, 9);
    for (let i = 0; i < 20; i++) {
      writer.write([FrameType.NEXT, 7, value]);
      await tick();
    }
    const inPlace = chunks.filter((chunk) => chunk.buffer === value.buffer);
    const headers = chunks.filter((chunk) => chunk.buffer !== value.buffer);
    expect(inPlace).toHaveLength(20);
    expect(headers).toHaveLength(20);
    expect(new Set(headers.map((header) => header.buffer)).size).toBe(1);
  });

  it('a stream over a real connection: every value arrives as sent, binaries as views into the received frame', async () => {
    const sent: unknown[] = [
      0,
      -1,
      -33,
      300,
      70_000,
      2 ** 31,
      -(2 ** 31),
      2 ** 40,
      1.5,
      'text',
      { a: 1, b: [2, 'c'] },
      null,
      Buffer.alloc(0),
      Buffer.alloc(100, 1),
      Buffer.alloc(300, 2),
      Buffer.alloc(64 * 1024, 3),
      Buffer.alloc(100_000, 4),
    ];
    const server = new DataPlaneServer({
      request(_request, reply) {
        for (const v of sent.slice(0, -1)) reply.next(v);
        reply.next(sent.at(-1), true);
      },
      event: () => undefined,
      describe: () => ({ messages: [], events: [] }),
    });
    servers.push(server);
    const { port } = await server.listen('127.0.0.1', 0);
    const connection = new PeerConnection('127.0.0.1', port, {});
    connections.push(connection);
    const received = await new Promise<unknown[]>((resolve, reject) => {
      const values: unknown[] = [];
      connection.request('download', null, undefined, {
        next: (v) => values.push(v),
        error: reject,
        complete: () => resolve(values),
      });
    });
    expect(received.map((v) => (v instanceof Uint8Array ? Buffer.from(v) : v))).toEqual(sent);
    for (const [index, v] of received.entries()) {
      if (!(sent[index] instanceof Uint8Array)) continue;
      expect(Buffer.isBuffer(v)).toBe(true);
      const view = v as Buffer;
      // A view: the frame's bytes are around it, starting with its bin header.
      expect(view.buffer.byteLength).toBeGreaterThan(view.byteLength);
      const length = view.length;
      const header =
        length < 0x100
          ? [0xc4, length]
          : length < 0x10000
            ? [0xc5, length >>> 8, length & 255]
            : [0xc6, length >>> 24, (length >>> 16) & 255, (length >>> 8) & 255, length & 255];
      expect([...new Uint8Array(view.buffer, view.byteOffset - header.length, header.length)]).toEqual(
        header,
      );
    }
  });
});
