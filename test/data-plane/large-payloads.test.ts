import { describe, expect, it } from '@jest/globals';
import { Encoder } from '@msgpack/msgpack';
import type { InboundRequest } from '../../lib/data-plane/data-plane-server.js';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import {
  ENCODE_STRING_NATIVELY_FROM,
  FrameWriter,
  SEND_IN_PLACE_FROM,
} from '../../lib/data-plane/frame-writer.js';
import { dataPlanePairs } from '../support/data-plane-pair.js';
import { recordingSocket } from '../support/recording-socket.js';

const MiB = 1024 * 1024;
const connect = dataPlanePairs();

function patterned(size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31) & 0xff;
  return bytes;
}

/** Every frame in `chunks`, decoded. */
function decodeAll(chunks: Buffer[]): unknown[] {
  const decoder = new FrameDecoder(64 * MiB);
  const out: unknown[] = [];
  for (const chunk of chunks) expect(decoder.push(chunk, (value) => out.push(value))).toBeUndefined();
  expect(decoder.pendingBytes).toBe(0);
  return out;
}

/** Sends `payload` as one request over a real connection to a server answering `reply`. */
async function roundTrip(
  payload: unknown,
  reply: unknown,
): Promise<{ seen: InboundRequest; answer: unknown }> {
  const seen: InboundRequest[] = [];
  const connection = await connect((request, channel) => {
    seen.push(request);
    channel.next(reply, true);
  });
  const answer = await new Promise<unknown>((resolve, reject) => {
    connection.request('upload', payload, undefined, { next: resolve, error: reject, complete: () => {} });
  });
  return { seen: seen[0], answer };
}

describe('large payloads', () => {
  it('the writer hands a large binary to the socket in place (same memory, not a copy) and the frame decodes', async () => {
    const writer = new FrameWriter();
    const { socket, chunks } = recordingSocket();
    writer.attach(socket);
    const payload = patterned(2 * MiB);
    const size = writer.write([1, 7, 'upload', payload, { trace: 't' }]);
    writer.write([2, 'small', 'x']);
    await new Promise((resolve) => process.nextTick(resolve));
    const inPlace = chunks.filter((chunk) => chunk.buffer === payload.buffer);
    expect(inPlace).toHaveLength(1);
    expect(inPlace[0].byteOffset).toBe(payload.byteOffset);
    expect(inPlace[0].length).toBe(payload.length);
    // What went out besides the payload is only the frames' small parts.
    const others = chunks.reduce((sum, chunk) => sum + chunk.length, 0) - payload.length;
    expect(others).toBeLessThan(100);
    // prefix 4, array 1, type 1, id 1, 'upload' 7, bin 32 header 5, { trace: 't' } 9
    expect(size).toBe(payload.length + 28);
    const [big, small] = decodeAll(chunks) as [unknown[], unknown[]];
    expect(big.slice(0, 3)).toEqual([1, 7, 'upload']);
    expect(Buffer.from(big[3] as Uint8Array).equals(payload)).toBe(true);
    expect(big[4]).toEqual({ trace: 't' });
    expect(small).toEqual([2, 'small', 'x']);
  });

  it('a large encoding that is not a top-level binary goes out as the encoder made it, not joined with other frames', async () => {
    const writer = new FrameWriter();
    const { socket, chunks } = recordingSocket();
    writer.attach(socket);
    const text = 'k'.repeat(3 * MiB);
    writer.write([3, 1, 'a']);
    writer.write([3, 2, { text }]);
    writer.write([3, 3, 'c']);
    await new Promise((resolve) => process.nextTick(resolve));
    // Written in parts: the big body alone (over 3 MiB), the small frames and length prefixes apart.
    expect(chunks.filter((chunk) => chunk.length > 3 * MiB)).toHaveLength(1);
    expect(chunks.filter((chunk) => chunk.length > 3 * MiB)[0].length).toBeLessThan(3 * MiB + 32);
    expect(decodeAll(chunks)).toEqual([
      [3, 1, 'a'],
      [3, 2, { text }],
      [3, 3, 'c'],
    ]);
  });

  it('a large frame taken back before it was sent leaves the rest of the batch intact', async () => {
    const writer = new FrameWriter();
    const { socket, chunks } = recordingSocket();
    writer.write([2, 'first', 1]);
    const start = writer.batchOffset;
    const size = writer.write([2, 'dropped', patterned(SEND_IN_PLACE_FROM)]);
    writer.write([2, 'last', 3]);
    expect(writer.remove(writer.batch, start, size)).toBe(true);
    writer.attach(socket);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(decodeAll(chunks)).toEqual([
      [2, 'first', 1],
      [2, 'last', 3],
    ]);
  });

  it('a handler receives a binary payload as a view into the received frame, and the caller gets the reply so too', async () => {
    const reply = patterned(MiB + 3);
    const payload = patterned(3 * MiB + 5);
    const { seen, answer } = await roundTrip(payload, reply);
    for (const [received, sent] of [
      [seen.data, payload],
      [answer, reply],
    ] as Array<[unknown, Buffer]>) {
      // A Buffer: the codec decodes bin from the received Buffer by subarray.
      expect(Buffer.isBuffer(received)).toBe(true);
      const view = received as Uint8Array;
      expect(Buffer.from(view).equals(sent)).toBe(true);
      // A view: its memory is the whole frame's, and right before it sit the frame's bin 32 header bytes.
      expect(view.buffer.byteLength).toBeGreaterThan(view.byteLength);
      const header = new Uint8Array(view.buffer, view.byteOffset - 5, 5);
      const length = sent.length;
      expect([...header]).toEqual([
        0xc6,
        length >>> 24,
        (length >>> 16) & 255,
        (length >>> 8) & 255,
        length & 255,
      ]);
    }
  });

  it('a binary nested anywhere in a payload arrives as a view into the received frame too', async () => {
    const small = patterned(1000);
    const { seen } = await roundTrip({ name: 'x', parts: [1, { bytes: small }] }, 1);
    const received = (seen.data as { parts: [number, { bytes: Uint8Array }] }).parts[1].bytes;
    expect(Buffer.isBuffer(received)).toBe(true);
    expect(Buffer.from(received).equals(small)).toBe(true);
    // Its memory is the frame's (bin 16 header right before it), not an allocation of its own.
    expect(received.buffer.byteLength).toBeGreaterThan(received.byteLength);
    expect([...new Uint8Array(received.buffer, received.byteOffset - 3, 3)]).toEqual([
      0xc5,
      1000 >> 8,
      1000 & 255,
    ]);
  });
});

/** Text of `length` UTF-16 units cycling through 1-, 2-, 3- and 4-byte UTF-8 characters (or ASCII only). */
function text(length: number, multibyte = true): string {
  const cycle = multibyte ? 'aż日🚀' : 'lorem ipsum 0123456789 ';
  return cycle.repeat(Math.ceil(length / cycle.length)).slice(0, length);
}

/** What the writer handed to the socket for `frames`, and the chunks themselves. */
async function written(frames: unknown[][]): Promise<{ bytes: Buffer; chunks: Buffer[] }> {
  const writer = new FrameWriter();
  const { socket, chunks } = recordingSocket();
  writer.attach(socket);
  for (const frame of frames) writer.write(frame);
  await new Promise((resolve) => process.nextTick(resolve));
  return { bytes: Buffer.concat(chunks), chunks };
}

/** The frames as @msgpack/msgpack encodes them, each after its 4-byte length. */
function codecBytes(frames: unknown[][]): Buffer {
  const encoder = new Encoder({ ignoreUndefined: true });
  return Buffer.concat(
    frames.map((frame) => {
      const body = encoder.encode(frame);
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(body.length);
      return Buffer.concat([prefix, body]);
    }),
  );
}

describe('large strings', () => {
  it('long strings, encoded natively, go out byte for byte as the codec encodes them (headers, multibyte, lone surrogates)', async () => {
    const samples = [
      text(ENCODE_STRING_NATIVELY_FROM - 1), // the codec's own path, for comparison
      text(ENCODE_STRING_NATIVELY_FROM, false),
      text(ENCODE_STRING_NATIVELY_FROM),
      text(20_000),
      // 0xffff and 0x10000 bytes of UTF-8: the last str 16 and the first str 32.
      'x'.repeat(0xffff - 3) + '日',
      'x'.repeat(0xffff) + 'y',
      // Lone surrogates (a high one at the end, a low one alone) become U+FFFD, as with the codec.
      text(5000) + '\udc00' + text(70_000) + '\ud800',
      text(3 * MiB),
    ];
    const frames = samples.flatMap((sample, i) => [
      [1, i, 'upload', sample, { trace: 't' }],
      [3, i, sample, true],
      [2, 'x'.repeat(ENCODE_STRING_NATIVELY_FROM + i), sample, undefined],
    ]);
    const { bytes } = await written(frames);
    expect(bytes.equals(codecBytes(frames))).toBe(true);
  });

  it('a string of 64 KiB of UTF-8 or more is handed to the socket as its UTF-8 bytes alone, not joined with the rest of its frame', async () => {
    for (const sample of [text(SEND_IN_PLACE_FROM, false), text(2 * MiB)]) {
      const utf8 = Buffer.from(sample);
      expect(utf8.length).toBeGreaterThanOrEqual(SEND_IN_PLACE_FROM);
      const { chunks } = await written([
        [3, 1, 'a'],
        [1, 2, 'upload', sample, { trace: 't' }],
        [3, 3, 'c'],
      ]);
      const alone = chunks.filter((chunk) => chunk.length === utf8.length);
      expect(alone).toHaveLength(1);
      expect(alone[0].equals(utf8)).toBe(true);
      // The rest is the small frames and this frame's head and tail.
      expect(chunks.reduce((sum, chunk) => sum + chunk.length, 0) - utf8.length).toBeLessThan(64);
    }
  });

  it('a long string crosses a real connection both ways intact', async () => {
    const reply = text(MiB + 7);
    // Whole characters (a multiple of the 5-unit cycle), then a lone surrogate, which arrives as U+FFFD.
    const payload = text(3 * MiB + 2) + '\ud800';
    const { seen, answer } = await roundTrip(payload, reply);
    // Compared as booleans: a failure would print megabytes of text.
    expect(seen.data === payload.slice(0, -1) + '\ufffd').toBe(true);
    expect(answer === reply).toBe(true);
  });
});
