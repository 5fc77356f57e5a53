import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import net from 'node:net';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';

// A live data-plane server under random bytes, random splits, huge length prefixes, truncated frames,
// valid frames of unknown shape and floods of connections: it stays up, its memory stays bounded, and a
// well-behaved client is served throughout.
let server: DataPlaneServer;
let port: number;
let good: PeerConnection;
const writer = new FrameWriter();

beforeAll(async () => {
  server = new DataPlaneServer(
    {
      request: (request, reply) => reply.next(request.data, true),
      event: () => undefined,
      describe: () => ({ messages: ['echo'], events: [] }),
    },
    { maxFrameSize: 64 * 1024 },
  );
  ({ port } = await server.listen('127.0.0.1', 0));
  good = new PeerConnection('127.0.0.1', port);
});

afterAll(async () => {
  good.close();
  await server.close();
});

function echo(value: unknown): Promise<unknown> {
  return new Promise((resolve, reject) =>
    good.request('echo', value, undefined, { next: resolve, error: reject, complete: () => undefined }),
  );
}

/** Sends the chunks on a fresh connection, then closes it; resolves when the server has let it go. */
function attack(chunks: Uint8Array[]): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.on('data', () => undefined);
    socket.once('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
      socket.end();
    });
  });
}

const hostileStream = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 4096 }),
  fc.nat({ max: 0xffffffff }).map((length) => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(length);
    return Buffer.concat([header, Buffer.alloc(16, 1)]);
  }),
  fc
    .array(fc.oneof(fc.integer(), fc.string(), fc.constant(null)), { maxLength: 6 })
    .map((value) => writer.encodeOne(value)),
  fc.nat({ max: 60 }).map((cut) => writer.encodeOne([1, 1, 'echo', 'x'.repeat(64)]).subarray(0, cut)),
);

describe('hostile input on the data plane', () => {
  it('survives thousands of hostile connections, split anywhere, with bounded memory', async () => {
    expect(await echo('before')).toBe('before');
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    await fc.assert(
      fc.asyncProperty(
        fc.array(hostileStream, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        async (parts, cuts) => {
          const bytes = Buffer.concat(parts);
          const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Uint8Array[] = [];
          let from = 0;
          for (const point of [...points, bytes.length]) {
            if (point > from) chunks.push(bytes.subarray(from, point));
            from = point;
          }
          await attack(chunks);
        },
      ),
      { numRuns: 1500 },
    );
    // A flood: two hundred connections at once, each sending garbage.
    await Promise.all(Array.from({ length: 200 }, () => attack([Buffer.from('GET / HTTP/1.1\r\n\r\n')])));
    expect(await echo('after')).toBe('after');
    const stats = server.stats();
    expect(stats.openConnections).toBe(1);
    let dropped = 0;
    for (const [name, count] of Object.entries(stats)) if (name.startsWith('dropped.')) dropped += count;
    expect(dropped).toBeGreaterThan(1000);
    global.gc?.();
    // Bounded: whatever the attacks buffered was released (generous bound for a non-forced GC).
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
  }, 120_000);
});
