import { describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { assemblesAsItArrives, FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
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

  it('decodes the same frames split every possible way around their length prefixes', () => {
    const frames = [
      [1, 7, 'echo', 'x'.repeat(300)],
      [5, 8],
    ];
    const bytes = Buffer.concat(frames.map((frame) => writer.encodeOne(frame)));
    const second = writer.encodeOne(frames[0]).length;
    const heads = [...Array(9).keys(), ...Array.from({ length: 9 }, (_, i) => second - 2 + i)];
    // Two cuts, each anywhere in the first or the second frame's head (prefix and first bytes).
    for (const a of heads)
      for (const b of heads) {
        if (a <= 0 || b <= a || b >= bytes.length) continue;
        const decoder = new FrameDecoder(1024);
        const out: unknown[] = [];
        for (const part of [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)])
          expect(decoder.push(part, (value) => out.push(value))).toBeUndefined();
        expect(out).toEqual(frames);
        expect(decoder.pendingBytes).toBe(0);
      }
  });

  // Sizes around the window joined when whole (JOIN_FROM to JOIN_BELOW); 40 MiB needs a larger limit.
  it.each([
    { size: 1024 * 1024, whole: false },
    { size: 16 * 1024 * 1024, whole: true },
    { size: 40 * 1024 * 1024, whole: false },
  ])(
    'copies each byte of a $size-byte frame at most once after a 1-byte first chunk; joined when whole: $whole',
    ({ size, whole }) => {
      expect(assemblesAsItArrives(size)).toBe(!whole);
      const payload = Buffer.alloc(size - 64, 7);
      const frame = writer.encodeOne([3, 1, payload, true]);
      const concat = jest.spyOn(Buffer, 'concat');
      const set = jest.spyOn(Uint8Array.prototype, 'set');
      /** The size of each copy the decoder has made so far (joins and copies into a frame's buffer). */
      const copies = () => [
        ...concat.mock.results.map((result) => (result.value as Buffer).length),
        ...set.mock.calls.map(([source]) => (source as ArrayLike<number>).length),
      ];
      const total = (sizes: number[]) => sizes.reduce((sum, length) => sum + length, 0);
      try {
        const decoder = new FrameDecoder(size + 1024);
        const out: unknown[] = [];
        const chunk = 64 * 1024;
        expect(decoder.push(frame.subarray(0, 1), (value) => out.push(value))).toBeUndefined();
        let from = 1;
        for (; from + chunk < frame.length; from += chunk)
          expect(
            decoder.push(frame.subarray(from, from + chunk), (value) => out.push(value)),
          ).toBeUndefined();
        // All but the last chunk in: copied as it arrives, most of it is in its buffer already; joined
        // when whole, nothing has been copied or reserved yet.
        const beforeLast = total(copies());
        if (whole) expect(beforeLast).toBe(0);
        else expect(beforeLast).toBeGreaterThanOrEqual(frame.length - 2 * chunk);
        expect(decoder.push(frame.subarray(from), (value) => out.push(value))).toBeUndefined();
        expect(out).toHaveLength(1);
        const value = (out[0] as [number, number, Uint8Array])[2];
        expect(value.length).toBe(payload.length);
        expect(Buffer.from(value.buffer, value.byteOffset, value.length).equals(payload)).toBe(true);
        // Work done is bytes copied: a linear decoder copies the frame once; the quadratic one copied the
        // whole buffered prefix again at every chunk (some 2 GiB for 16 MiB).
        const made = copies();
        const copied = total(made);
        expect(copied).toBeLessThanOrEqual(frame.length);
        // And the count sees the copy it must do (the 1-byte first chunk splits the frame).
        expect(copied).toBeGreaterThanOrEqual(payload.length);
        // Copied as it arrives, no single step copies more than an eighth of it, so the process's other
        // connections never wait behind one large copy; joined when whole, the last step copies it all.
        if (whole) expect(Math.max(...made)).toBeGreaterThanOrEqual(payload.length);
        else expect(Math.max(...made)).toBeLessThanOrEqual(frame.length / 8 + chunk);
      } finally {
        concat.mockRestore();
        set.mockRestore();
      }
    },
  );

  it('decodes large frames, copied as they arrive, however the stream is split and paused', () => {
    const frames = [
      [1, 7, 'bytes', Buffer.alloc(200 * 1024, 3)],
      [5, 8],
      [3, 9, Buffer.alloc(70 * 1024, 4), true],
      [3, 10, 'x'.repeat(100 * 1024)],
      [6, 11],
    ];
    const bytes = Buffer.concat(frames.map((frame) => writer.encodeOne(frame)));
    // Binaries as base64 text: compared as strings, not element by element.
    const plain = (values: unknown[]) =>
      values.map((frame) =>
        (frame as unknown[]).map((item) =>
          item instanceof Uint8Array
            ? Buffer.from(item.buffer, item.byteOffset, item.byteLength).toString('base64')
            : item,
        ),
      );
    const expected = plain(frames);
    fc.assert(
      fc.property(
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.array(fc.boolean(), { maxLength: 40 }),
        (cuts, holds) => {
          const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
          const decoder = new FrameDecoder(1024 * 1024);
          const out: unknown[] = [];
          const onValue = (value: unknown) => out.push(value);
          let from = 0;
          let index = 0;
          for (const point of [...points, bytes.length]) {
            // Held while some chunks arrive (a paused server), released before the next.
            const held = holds[index++] === true;
            if (held) decoder.hold();
            expect(decoder.push(bytes.subarray(from, point), onValue)).toBeUndefined();
            if (held) expect(decoder.release(onValue)).toBeUndefined();
            from = point;
          }
          expect(plain(out)).toEqual(expected);
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });
});
