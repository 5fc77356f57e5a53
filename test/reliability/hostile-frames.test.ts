import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import net from 'node:net';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

// A live data-plane server, alone in a process started with --expose-gc, under random bytes, random
// splits, huge length prefixes, truncated frames, valid frames of unknown shape and floods of
// connections: it stays up, every hostile connection is dropped and counted once, nothing stays
// buffered, its memory after a forced collection comes back to where it was, and a well-behaved client
// is served throughout.
const MAX_FRAME_SIZE = 64 * 1024;
let target: ChildFixture;
let port: number;
let good: PeerConnection;
const writer = new FrameWriter();

beforeAll(async () => {
  target = runFixture(
    'test/reliability/fixtures/frames-target.ts',
    [String(MAX_FRAME_SIZE)],
    20_000,
    undefined,
    ['--expose-gc'],
  );
  ({ port } = (await target.ready) as { port: number });
  good = new PeerConnection('127.0.0.1', port);
});

afterAll(async () => {
  good?.close();
  target.child.kill('SIGKILL');
  await target.exited;
});

function echo(value: unknown): Promise<unknown> {
  return new Promise((resolve, reject) =>
    good.request('echo', value, undefined, { next: resolve, error: reject, complete: () => undefined }),
  );
}

async function stats(): Promise<Record<string, number>> {
  target.send('stats');
  return (await target.next('stats')).stats as Record<string, number>;
}

function dropped(counts: Record<string, number>): number {
  let total = 0;
  for (const [name, count] of Object.entries(counts)) if (name.startsWith('dropped.')) total += count;
  return total;
}

/** heapUsed + arrayBuffers of the server's process after a forced collection: socket buffers are the latter. */
async function memory(): Promise<number> {
  target.send('memory');
  const { heapUsed, arrayBuffers } = (await target.next('memory')).memory as Record<string, number>;
  return heapUsed + arrayBuffers;
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

/** A length prefix over the limit: whatever follows, the connection is dropped as soon as it is read. */
const oversized = fc.integer({ min: MAX_FRAME_SIZE + 1, max: 0xffffffff }).map((length) => {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length);
  return Buffer.concat([header, Buffer.alloc(16, 1)]);
});

/** A frame announced within the limit that ends early: the server buffers its body until the end. */
const truncatedLarge = fc.integer({ min: 1024, max: MAX_FRAME_SIZE }).map((length) => {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length);
  return Buffer.concat([header, Buffer.alloc(length - 1, 0xc1)]);
});

const hostilePart = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 4096, size: 'max' }),
  oversized,
  truncatedLarge,
  fc
    .array(fc.oneof(fc.integer(), fc.string(), fc.constant(null)), { maxLength: 6 })
    .map((value) => writer.encodeOne(value)),
  fc.nat({ max: 60 }).map((cut) => writer.encodeOne([1, 1, 'echo', 'x'.repeat(64)]).subarray(0, cut)),
);

describe('hostile input on the data plane', () => {
  it('survives thousands of hostile connections, split anywhere: each dropped once, nothing kept', async () => {
    expect(await echo('before')).toBe('before');
    // Warm up (JIT, the decoder's caches, socket pools) before the baseline.
    for (let i = 0; i < 50; i++) await attack([Buffer.from('warm-up garbage')]);
    const memoryBefore = await memory();
    let sentBytes = 0;
    let connections = 0;
    let certain = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(hostilePart, { minLength: 1, maxLength: 4 }),
        oversized,
        fc.array(fc.nat(), { maxLength: 4 }),
        async (startOversized, rest, first, cuts) => {
          // About half the streams start with an oversized prefix: those must be dropped, every time.
          const parts = startOversized ? [first, ...rest] : rest;
          const bytes = Buffer.concat(parts);
          const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Uint8Array[] = [];
          let from = 0;
          for (const point of [...points, bytes.length]) {
            if (point > from) chunks.push(bytes.subarray(from, point));
            from = point;
          }
          const before = dropped(await stats());
          await attack(chunks);
          const counted = dropped(await stats()) - before;
          // A connection is closed at its first fault: never counted twice. Some random streams are
          // valid frames (a CANCEL of nothing, say), which are not faults.
          if (startOversized) expect(counted).toBe(1);
          else expect(counted).toBeLessThanOrEqual(1);
          sentBytes += bytes.length;
          connections++;
          if (startOversized) certain++;
        },
      ),
      { numRuns: 1500 },
    );
    // The counter itself: a connection holding part of a frame shows it, and lets it go when it ends.
    const holder = net.connect(port, '127.0.0.1');
    holder.on('error', () => undefined);
    const holderClosed = new Promise((resolve) => holder.on('close', resolve));
    holder.on('data', () => undefined);
    await new Promise((resolve) => holder.once('connect', resolve));
    holder.write(Buffer.concat([Buffer.from([0, 0, 0x03, 0xe8]), Buffer.alloc(500, 0xc1)]));
    const beforeFlood = dropped(await stats());
    let held = 0;
    for (let asked = 0; asked < 1000 && held !== 504; asked++) held = (await stats()).bufferedBytes;
    expect(held).toBe(504);
    holder.end();
    await holderClosed;
    // A flood: two hundred connections at once, each sending an HTTP request ("GET " is a length
    // prefix far over the limit).
    await Promise.all(Array.from({ length: 200 }, () => attack([Buffer.from('GET / HTTP/1.1\r\n\r\n')])));
    const after = await stats();
    expect(dropped(after) - beforeFlood).toBe(201);
    expect(await echo('after')).toBe('after');
    expect(connections).toBe(1500);
    expect(certain).toBeGreaterThan(500);
    expect(after.openConnections).toBe(1);
    expect(dropped(after)).toBeGreaterThan(1000);
    // Nothing held for the dead connections (the good one is idle).
    expect({
      bufferedBytes: after.bufferedBytes,
      queuedBytes: after.queuedBytes,
      inFlight: after.inFlight,
    }).toEqual({
      bufferedBytes: 0,
      queuedBytes: 0,
      inFlight: 0,
    });
    const growth = (await memory()) - memoryBefore;
    // Tens of megabytes went through; a leak of even one small object per connection (1,750 of them)
    // or of the buffered bodies would show.
    expect(sentBytes).toBeGreaterThan(20 * 1024 * 1024);
    expect(growth).toBeLessThan(2 * 1024 * 1024);
  }, 120_000);
});
