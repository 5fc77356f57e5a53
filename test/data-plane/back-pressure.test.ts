import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

// A client that sends requests as fast as it can and never reads its replies, against a real server in
// its own process (started with --expose-gc, so memory is measured after a forced GC).
const MiB = 1024 * 1024;
const MARK = 2 * MiB;
/** A 1 KiB reply frame: NEXT, id, 1,024 characters, last. */
const REPLY_FRAME = 1024 + 16;
/** Requests the attacker tries to send: with replies kept, some 100 MiB. */
const ATTACK_REQUESTS = 100_000;

let server: ChildFixture;
let port: number;

beforeAll(async () => {
  server = runFixture('test/data-plane/fixtures/reply-server.ts', [String(MARK)], undefined, undefined, [
    '--expose-gc',
  ]);
  port = (await server.ready).port as number;
});

afterAll(async () => {
  server.child.stdin?.end();
  await server.exited;
});

interface Measured {
  used: number;
  stats: Record<string, number>;
}

async function measure(): Promise<Measured> {
  const line = server.next('measured');
  server.send('measure');
  return (await line).measured as Measured;
}

/** Median round trip of `count` requests sent one after the other, in microseconds. */
async function medianLatency(connection: PeerConnection, count: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await new Promise((resolve, reject) =>
      connection.request('reply', i, undefined, { next: resolve, error: reject, complete: () => undefined }),
    );
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(count / 2)];
}

/**
 * Writes ATTACK_REQUESTS valid requests as fast as the socket takes them and never reads. Resolves
 * 'stuck' once a write has waited 2 s for 'drain' (the server stopped reading), 'sent' if all went.
 */
function attack(socket: net.Socket): Promise<'stuck' | 'sent'> {
  const writer = new FrameWriter();
  const batch = Buffer.concat(
    // ~230 bytes each: 23 MB in all, more than the kernel buffers between the two.
    Array.from({ length: 1000 }, (_, i) => writer.encodeOne([1, i + 1, 'reply', 'y'.repeat(220)])),
  );
  return new Promise((resolve) => {
    let sent = 0;
    const more = (): void => {
      while (sent < ATTACK_REQUESTS) {
        sent += 1000;
        if (!socket.write(batch)) {
          const stuck = setTimeout(() => resolve('stuck'), 2000);
          socket.once('drain', () => {
            clearTimeout(stuck);
            setImmediate(more);
          });
          return;
        }
      }
      resolve('sent');
    };
    more();
  });
}

describe('a client that never reads its replies', () => {
  it('is paused at the high-water mark: the server holds at most the mark plus one frame, others keep their speed', async () => {
    const good = new PeerConnection('127.0.0.1', port);
    try {
      await medianLatency(good, 200); // warm up both sides
      const baseline = await medianLatency(good, 400);
      const before = await measure();

      const attacker = net.connect(port, '127.0.0.1');
      attacker.on('error', () => undefined);
      await new Promise((resolve) => attacker.once('connect', resolve));
      attacker.pause(); // never reads a byte
      const [outcome, during] = await Promise.all([attack(attacker), medianLatency(good, 400)]);
      const after = await measure();
      attacker.destroy();

      const report = {
        outcome,
        baselineUs: Math.round(baseline),
        duringUs: Math.round(during),
        grewBytes: after.used - before.used,
        peakConnectionBacklog: after.stats.peakConnectionBacklog,
        bufferedBytes: after.stats.bufferedBytes,
        readPauses: after.stats.readPauses,
      };
      process.stdout.write(`back-pressure: ${JSON.stringify(report)}\n`);
      expect(outcome).toBe('stuck');
      expect(after.stats.pausedConnections).toBe(1);
      // The library's own count: unsent replies never past the mark plus the one frame that crossed it.
      expect(after.stats.peakConnectionBacklog).toBeLessThanOrEqual(MARK + REPLY_FRAME);
      // Everything it holds for that client, the undecoded requests of the last read (64 KiB) included.
      expect(after.stats.bufferedBytes).toBeLessThanOrEqual(MARK + REPLY_FRAME + 64 * 1024);
      // The whole process after a forced GC: keeping every reply would be ~100 MiB.
      expect(after.used - before.used).toBeLessThanOrEqual(MARK + 4 * MiB);
      // Others keep being served while it is stuck (a server blocked on it would not answer at all); the
      // margin is for a shared machine, where two medians of tens of µs taken apart easily differ 2×.
      expect(during).toBeLessThanOrEqual(5 * baseline + 2000);
    } finally {
      good.close();
    }
  });
});
