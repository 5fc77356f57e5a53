import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';

const writer = new FrameWriter();
const frameValue = fc.array(
  fc.oneof(
    fc.integer(),
    fc.string(),
    fc.boolean(),
    fc.constant(null),
    fc.double({ noNaN: true }).filter((n) => !Object.is(n, -0)),
  ),
  {
    minLength: 1,
    maxLength: 6,
  },
);

describe('frame decoder', () => {
  it('decodes any sequence of frames however the stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(frameValue, { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map((frame) => writer.encodeOne(frame)));
          const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
          const decoder = new FrameDecoder(1024 * 1024);
          const out: unknown[] = [];
          let from = 0;
          for (const point of [...points, bytes.length]) {
            expect(decoder.push(bytes.subarray(from, point), (value) => out.push(value))).toBeUndefined();
            from = point;
          }
          expect(out).toEqual(frames);
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses a length prefix over the limit before buffering its body', () => {
    const decoder = new FrameDecoder(1000);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1001);
    expect(decoder.push(header, () => undefined)).toBe('oversizedFrame');
    // Split inside the prefix too.
    const split = new FrameDecoder(1000);
    expect(split.push(header.subarray(0, 2), () => undefined)).toBeUndefined();
    expect(split.push(header.subarray(2), () => undefined)).toBe('oversizedFrame');
  });

  it('refuses bytes that are not MessagePack, and empty frames', () => {
    const garbage = Buffer.from([0, 0, 0, 2, 0xc1, 0xc1]);
    expect(new FrameDecoder(1000).push(garbage, () => undefined)).toBe('notMessagePack');
    expect(new FrameDecoder(1000).push(Buffer.alloc(4), () => undefined)).toBe('emptyFrame');
  });
});
