import { describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { Decoder, Encoder } from '@msgpack/msgpack';
import type { InboundRequest } from '../../lib/data-plane/data-plane-server.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType, parseFrame, type Metadata } from '../../lib/data-plane/frames.js';
import { readNextFrame } from '../../lib/data-plane/next-frame.js';
import { keptPatterns, readRequestFrame } from '../../lib/data-plane/request-frame.js';
import { decodesInPlace } from '../../lib/data-plane/small-values.js';
import { codecBytes, damage, frameId, frameValue, inChunk } from '../support/msgpack-arbitraries.js';
import { dataPlanePairs } from '../support/data-plane-pair.js';
import { recordingSocket } from '../support/recording-socket.js';

const connect = dataPlanePairs();

const tick = () => new Promise((resolve) => process.nextTick(resolve));

const route = fc.oneof(
  fc.constantFrom('{"cmd":"sum"}', 'math.sum', 'é', '\ud800'),
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
  // Past the writer's cache (256 bytes) and past the native string encoding (256 units).
  fc.string({ unit: 'grapheme-ascii', minLength: 120, maxLength: 300 }),
  fc.constantFrom('x'.repeat(255), 'x'.repeat(256), 'é'.repeat(127), 'é'.repeat(128)),
);
const metadata = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.constant(undefined))),
  fc.constant({ traceparent: '00-'.padEnd(55, '1') }),
  fc.constant({ long: 'y'.repeat(70_000) }),
);
type Request = [number, string, unknown, Metadata | undefined];
const request = fc.tuple(frameId, route, frameValue, metadata) as fc.Arbitrary<Request>;

/** A writer handing its bytes to a recording socket. */
function attachedWriter(): { writer: FrameWriter; chunks: Buffer[] } {
  const writer = new FrameWriter();
  const { socket, chunks } = recordingSocket();
  writer.attach(socket);
  return { writer, chunks };
}

function arrayOf([id, pattern, data, meta]: Request): unknown[] {
  return meta === undefined
    ? [FrameType.REQUEST, id, pattern, data]
    : [FrameType.REQUEST, id, pattern, data, meta];
}

describe('REQUEST frames', () => {
  it('are written byte for byte as the codec writes the same array, sizes and limits included', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(request, fc.boolean()), { maxLength: 12 }), async (requests) => {
        const { writer, chunks } = attachedWriter();
        const expected: Buffer[] = [];
        for (const [frame, limited] of requests) {
          const bytes = codecBytes(arrayOf(frame));
          // A limit just under the frame's size: not queued, its size returned all the same.
          const limit = limited ? bytes.length - 1 : Infinity;
          expect(writer.writeRequest(...frame, limit)).toBe(bytes.length);
          if (!limited) expected.push(bytes);
        }
        await tick();
        expect(Buffer.concat(chunks).equals(Buffer.concat(expected))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('are written as the codec writes them past the pattern cache, and taken back before sending', async () => {
    const { writer, chunks } = attachedWriter();
    const expected: Buffer[] = [];
    // More routes than the writer keeps (1,024), written in one tick, every third taken back.
    for (let i = 0; i < 1500; i++) {
      const frame: Request = [i, `route ${i} ${'\ud800'.repeat(i % 3)}`, [i, -i], i % 2 ? { i } : undefined];
      const batch = writer.batch;
      const start = writer.batchOffset;
      const size = writer.writeRequest(...frame);
      if (i % 3 === 0 && writer.remove(batch, start, size)) continue;
      expected.push(codecBytes(arrayOf(frame)));
    }
    await tick();
    expect(Buffer.concat(chunks).equals(Buffer.concat(expected))).toBe(true);
  });

  it('large encoded data or metadata (over the 1 MiB the encoder keeps) are written as the codec writes them, large binaries sent in place', async () => {
    const { writer, chunks } = attachedWriter();
    const big = { text: 'y'.repeat(1100 * 1024) };
    const frames: Request[] = [
      [1, 'big', big, undefined],
      [2, 'big', [1, 2], big],
      [3, 'big', big, big],
      [4, 'small', { a: 1 }, { b: 2 }],
    ];
    for (const frame of frames) writer.writeRequest(...frame);
    // A large binary goes in place, not copied (as write sends it).
    const binary = Buffer.alloc(64 * 1024, 5);
    frames.push([5, 'bytes', binary, undefined]);
    // With metadata after it (small, null, and large enough for the encoder to be replaced).
    frames.push([6, 'bytes', binary, { traceparent: '00-'.padEnd(55, '1') }]);
    frames.push([7, 'bytes', binary, null as unknown as Metadata]);
    frames.push([2 ** 32 - 1, 'x'.repeat(300), binary, big]);
    for (const frame of frames.slice(4)) writer.writeRequest(...frame);
    await tick();
    expect(chunks.filter((chunk) => chunk.buffer === binary.buffer)).toHaveLength(4);
    expect(
      Buffer.concat(chunks).equals(Buffer.concat(frames.map((frame) => codecBytes(arrayOf(frame))))),
    ).toBe(true);
  });

  it('with a large binary as their data, are written without a new encoding per request', async () => {
    const { writer, chunks } = attachedWriter();
    const binary = Buffer.alloc(64 * 1024, 5);
    writer.writeRequest(0, 'upload', binary, undefined);
    const encode = jest.spyOn(Encoder.prototype, 'encode');
    try {
      for (let id = 1; id <= 100; id++) writer.writeRequest(id, 'upload', binary, undefined);
      // writeAround built each frame's array and encoded its type, id and pattern apart (300 calls). The
      // pattern alone may still be encoded per call once the writer's pattern cache is full (earlier tests).
      expect(encode.mock.calls.filter(([value]) => value !== 'upload')).toEqual([]);
    } finally {
      encode.mockRestore();
    }
    await tick();
    const expected = Array.from({ length: 101 }, (_, id) =>
      codecBytes(arrayOf([id, 'upload', binary, undefined])),
    );
    expect(Buffer.concat(chunks).equals(Buffer.concat(expected))).toBe(true);
  });

  it('are read as the codec reads them and parseFrame checks them, whatever the bytes, or left to the codec', () => {
    const encoder = new Encoder();
    const decoder = new Decoder();
    const anyId = fc.oneof(frameId, fc.constantFrom(-1, 1.5, 2 ** 32, 'id'));
    const anyPattern = fc.oneof(route, fc.constantFrom('', 'p'.repeat(4097), 7, null));
    const anyMetadata = fc.oneof(metadata, fc.constantFrom('text', [1], 5, true));
    const frame = fc.oneof(
      // Well-formed requests, read by hand unless damaged...
      { arbitrary: request.map(arrayOf), weight: 4 },
      // ...and ones parseFrame refuses or a reader could take for a request.
      fc.tuple(anyId, anyPattern, frameValue).map(([i, p, d]) => [FrameType.REQUEST, i, p, d]),
      fc
        .tuple(anyId, anyPattern, frameValue, anyMetadata)
        .map(([i, p, d, m]) => [FrameType.REQUEST, i, p, d, m]),
      fc.tuple(anyId, anyPattern).map(([i, p]) => [FrameType.REQUEST, i, p]),
      fc
        .tuple(anyId, anyPattern, frameValue, metadata, fc.integer())
        .map((rest) => [FrameType.REQUEST, ...rest]),
      fc.tuple(anyPattern, frameValue).map(([p, d]) => [FrameType.EVENT, p, d]),
    );
    const harm = fc.oneof({ arbitrary: fc.constant((bytes: Buffer) => bytes), weight: 2 }, damage);
    let taken = 0;
    fc.assert(
      fc.property(frame, harm, fc.nat(8), fc.nat(3), (array, hurt, before, after) => {
        const body = hurt(Buffer.from(encoder.encode(array)));
        const bytes = inChunk(body, before, after);
        let read: unknown[] | undefined;
        const took = readRequestFrame(bytes, before, before + body.length, (...args) => {
          read = args;
        });
        expect(took).toBe(read !== undefined);
        if (!took) return;
        taken++;
        const parsed = parseFrame(decoder.decode(body));
        expect(parsed).toEqual({
          type: FrameType.REQUEST,
          id: read![0],
          pattern: read![1],
          data: read![2],
          metadata: read![3],
        });
      }),
      { numRuns: 1000 },
    );
    // Not a test of nothing: many frames are read by hand.
    expect(taken).toBeGreaterThan(200);
  });

  it('usual frames are all taken by the readers, object data and metadata included (no second decode)', () => {
    expect(decodesInPlace).toBe(true);
    const encoder = new Encoder();
    const bodies = [
      [FrameType.REQUEST, 1, '{"cmd":"sum"}', [1, 2, 3]],
      [FrameType.REQUEST, 1, '{"cmd":"sum"}', { a: 1, b: 'two' }],
      [FrameType.REQUEST, 1, '{"cmd":"sum"}', { a: 1 }, { traceparent: 'x' }],
      [FrameType.REQUEST, 1, '{"cmd":"sum"}', 'text', null],
      [FrameType.NEXT, 1, { a: 1 }, true],
      [FrameType.NEXT, 1, 'text ending in é', true],
    ].map((frame) => Buffer.from(encoder.encode(frame)));
    const taken = bodies.map((body) =>
      body[1] === FrameType.NEXT
        ? readNextFrame(body, 0, body.length, () => undefined)
        : readRequestFrame(body, 0, body.length, () => undefined),
    );
    expect(taken).toEqual(bodies.map(() => true));
  });

  it('a pattern ending in a cut UTF-8 sequence is read as the codec reads it, with the bytes after it', () => {
    const decoder = new Decoder();
    for (const data of [[], [1, 2], 'text', { a: 1 }]) {
      const body = Buffer.from(new Encoder().encode([FrameType.REQUEST, 0, '{"cmd":"sum"}', data]));
      body[body.indexOf('}')] = 0xe0; // the closing brace becomes the lead byte of three
      const expected = parseFrame(decoder.decode(body)) as { pattern: string };
      expect(expected.pattern).not.toBe('{"cmd":"sum"}');
      for (let i = 0; i < 2; i++) {
        let read: unknown[] | undefined;
        if (!readRequestFrame(body, 0, body.length, (...args) => (read = args))) continue;
        expect(read).toEqual([0, expected.pattern, data, undefined]);
      }
    }
  });

  it('a pattern is read from its own bytes, never taken for a kept pattern of another; at most 1,024 are kept', () => {
    const encoder = new Encoder();
    const read: string[] = [];
    // More than the reader keeps (1,024), and two whose bytes have the same hash (FNV-1a, 32 bits).
    const patterns = [
      ...Array.from({ length: 3000 }, (_, i) => `p${i % 1100}`),
      ...['route7uzx', 'routee2ad', 'routee2ad', 'route7uzx'],
    ];
    for (const pattern of patterns) {
      const body = Buffer.from(encoder.encode([FrameType.REQUEST, 1, pattern, 2]));
      readRequestFrame(body, 0, body.length, (_id, p) => read.push(p));
    }
    expect(read).toEqual(patterns);
    // However many patterns come and go, each side keeps at most 1,024.
    const writer = new FrameWriter();
    for (let i = 0; i < 1100; i++) writer.writeRequest(i, `q${i}`, 1, undefined);
    expect(keptPatterns().decoded).toBeLessThanOrEqual(1024);
    expect(keptPatterns().encoded).toBe(1024);
  });

  it('a request over a real connection arrives as sent: data, metadata, binaries as views into the received frame', async () => {
    const sent: Array<[unknown, Metadata | undefined]> = [
      [[1, 2, 3, 4, 5, 6, 7, 8], undefined],
      [[1, 2, 3, 4, 5, 6, 7, 8], { traceparent: 'x' }],
      [{ a: 1 }, { b: 'c' }],
      [Buffer.alloc(300, 1), { b: 'c' }],
      [Buffer.alloc(100_000, 2), undefined],
      ['z'.repeat(1000), null as unknown as undefined],
      [undefined, undefined],
    ];
    const received: InboundRequest[] = [];
    const connection = await connect((inbound, reply) => {
      received.push(inbound);
      reply.next(0, true);
    });
    await Promise.all(
      sent.map(
        ([data, meta]) =>
          new Promise((resolve, reject) =>
            connection.request('{"cmd":"sum"}', data, meta, {
              next: () => undefined,
              error: reject,
              complete: () => resolve(undefined),
            }),
          ),
      ),
    );
    received.sort((a, b) => a.id - b.id);
    expect(received.map((r) => [r.pattern, r.data ?? null, r.metadata])).toEqual(
      sent.map(([data, meta]) => ['{"cmd":"sum"}', data ?? null, meta ?? undefined]),
    );
    const view = received[3].data as Buffer;
    expect(Buffer.isBuffer(view)).toBe(true);
    expect(view.buffer.byteLength).toBeGreaterThan(view.byteLength);
  });
});
