import type { Socket } from 'node:net';
import { Writable } from 'node:stream';

/**
 * A stand-in socket for a FrameWriter that records every chunk handed to it (by write or writev), as
 * given: one entry per write, so tests can see what was copied, what went in place and how often.
 */
export function recordingSocket(): { socket: Socket; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 64 * 1024 * 1024,
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
    writev(entries, done) {
      for (const { chunk } of entries) chunks.push(chunk as Buffer);
      done();
    },
  });
  return { socket: sink as unknown as Socket, chunks };
}
