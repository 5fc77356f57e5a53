import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType, parseFrame } from '../../lib/data-plane/frames.js';
import { readNextFrame } from '../../lib/data-plane/next-frame.js';
import {
  codecBytes,
  damage,
  frameId as id,
  frameValue as value,
  inChunk,
} from '../support/msgpack-arbitraries.js';
import { dataPlanePairs } from '../support/data-plane-pair.js';
import { recordingSocket } from '../support/recording-socket.js';

const connect = dataPlanePairs();

const tick = () => new Promise((resolve) => process.nextTick(resolve));

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
    fc.assert(
      fc.property(frame, damage, fc.nat(8), fc.nat(3), (array, harm, pad, after) => {
        // Somewhere inside a larger buffer, as in a received chunk, or at its very end.
        const body = harm(Buffer.from(encoder.encode(array)));
        const bytes = inChunk(body, pad, after);
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

  it('an id cut short at the end of the received bytes is left to the codec, not read past the end', () => {
    const took = (bytes: number[]) => readNextFrame(Buffer.from(bytes), 0, bytes.length, () => undefined);
    // uint 32, 16 and 8 ids missing their last bytes: reading them would throw out of the socket's handler.
    expect(took([0x93, 3, 0xce, 0, 0])).toBe(false);
    expect(took([0x93, 3, 0xce, 0, 0, 0])).toBe(false);
    expect(took([0x93, 3, 0xcd, 0, 0])).toBe(false);
    expect(took([0x94, 3, 0xcd, 0xc3])).toBe(false);
    // The id is whole but the value is missing: only the closing `true` follows it.
    expect(took([0x94, 3, 0xce, 0, 0, 0, 1, 0xc3])).toBe(false);
  });

  it('a last byte of 0xc3 is taken as the closing `true` only when the codec reads it so', () => {
    const read = (bytes: number[]) => {
      let got: unknown[] | undefined;
      const took = readNextFrame(Buffer.from(bytes), 0, bytes.length, (i, v, last) => {
        got = [i, v, last];
      });
      return took ? got : false;
    };
    // [3, 1, <bin c3>]: the 0xc3 is the binary's byte, not a `true` (a three-element frame).
    expect(read([0x93, 3, 1, 0xc4, 1, 0xc3])).toEqual([1, Buffer.from([0xc3]), false]);
    // [3, 1, 1, <bin c3>]: four elements, the fourth is no `true`: parseFrame says not last.
    expect(read([0x94, 3, 1, 1, 0xc4, 1, 0xc3])).toBe(false);
    // A binary whose declared length swallows the closing byte: the codec finds the frame short.
    expect(read([0x94, 3, 1, 0xc4, 2, 7, 0xc3])).toBe(false);
    // An int list whose last item would be the closing byte.
    expect(read([0x94, 3, 1, 0x92, 7, 0xc3])).toBe(false);
    expect(read([0x94, 3, 1, 0x92, 7, 8, 0xc3])).toEqual([1, [7, 8], true]);
    // [3, 1, 7, false]: four elements, not last.
    expect(read([0x94, 3, 1, 7, 0xc2])).toBe(false);
    // A string ending in a cut UTF-8 sequence: the codec completes it with the `true` after it ("À").
    expect([false, [1, 'À', true]]).toContainEqual(read([0x94, 3, 1, 0xa1, 0xe0, 0xc3]));
    expect(read([0x93, 3, 1, 0xc3])).toEqual([1, true, false]);
    expect(read([0x94, 3, 1, 0xc3, 0xc3])).toEqual([1, true, true]);
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
    const connection = await connect((_request, reply) => {
      for (const v of sent.slice(0, -1)) reply.next(v);
      reply.next(sent.at(-1), true);
    });
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
