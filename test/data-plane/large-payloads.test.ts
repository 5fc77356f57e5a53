import { afterEach, describe, expect, it } from '@jest/globals';
import { DataPlaneServer, type InboundRequest } from '../../lib/data-plane/data-plane-server.js';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameWriter, SEND_IN_PLACE_FROM } from '../../lib/data-plane/frame-writer.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { recordingSocket } from '../support/recording-socket.js';

const MiB = 1024 * 1024;
const servers: DataPlaneServer[] = [];
const connections: PeerConnection[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

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
    const seen: InboundRequest[] = [];
    const reply = patterned(MiB + 3);
    const server = new DataPlaneServer({
      request(request, channel) {
        seen.push(request);
        channel.next(reply, true);
      },
      event: () => undefined,
      describe: () => ({ messages: [], events: [] }),
    });
    servers.push(server);
    const { port } = await server.listen('127.0.0.1', 0);
    const connection = new PeerConnection('127.0.0.1', port, {});
    connections.push(connection);
    const payload = patterned(3 * MiB + 5);
    const answer = await new Promise<unknown>((resolve, reject) => {
      connection.request('upload', payload, undefined, { next: resolve, error: reject, complete: () => {} });
    });
    for (const [received, sent] of [
      [seen[0].data, payload],
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
});
