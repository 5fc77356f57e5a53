import { Decoder } from '@msgpack/msgpack';
import { forgetLargeInput } from './small-values.js';

/** Takes a consumed chunk's slot (an empty Buffer, so the array keeps one element type). */
const CONSUMED = Buffer.alloc(0);
const NOT_MESSAGEPACK = Symbol('not MessagePack');

export type DecodeFailure = 'oversizedFrame' | 'emptyFrame' | 'notMessagePack';

/**
 * Reads a frame body, `bytes[start, end)`, before the codec does; returns true if it took the frame
 * (then the codec does not see it). Bytes stay valid after the call: a value may keep a view of them.
 */
export type FrameShortcut = (bytes: Buffer, start: number, end: number) => boolean;

/**
 * A frame body of this many bytes or more that has not all arrived is copied, chunk by chunk as the
 * socket hands them over, into a buffer of its own (see FrameDecoder), except from JOIN_FROM to
 * JOIN_BELOW.
 */
export const ASSEMBLE_FROM = 64 * 1024;
/**
 * A frame body from 2 MiB up to 32 MiB is joined once it is whole instead, as a raw socket reader joins
 * it. Copied as they arrived, its buffer was reserved with most of its chunks still to come, and glibc
 * put those above it in the heap. Once both were freed, the free space at the heap's top passed glibc's
 * trim threshold (twice the largest block it has mapped and freed: 16 MiB after one 8 MiB frame), so
 * glibc gave it back to the system, and the next frame faulted it in again page by page. With four
 * 8 MiB uploads in flight that came to 700–820 page faults per upload and 0.79–0.85 of a raw socket's
 * rate; joined when whole, almost none and 1.21–1.33 (docs/benchmarks.md). The cost is one upload at
 * a time, whose copies no longer overlap its transfer: about a raw socket's rate (580–587 against
 * 464–546 MB/s) where copying as it arrived gave about twice it (919–1,044). Below 2 MiB, copying as it
 * arrives measured as fast or faster. From 32 MiB glibc maps each such buffer on its own whatever its
 * thresholds (nothing to trim), and copying as it arrives keeps every step to an eighth of the frame.
 */
const JOIN_FROM = 2 * 1024 * 1024;
const JOIN_BELOW = 32 * 1024 * 1024;
/**
 * That buffer is reserved once this fraction of the body (1 / 8) has arrived: a length prefix alone
 * reserves nothing, and a peer that stops sending holds at most 8 x the bytes it sent.
 */
const RESERVE_AFTER = 8;

/** Whether a frame body of `length` bytes, not all arrived, is copied as it arrives (see JOIN_FROM). */
export function assemblesAsItArrives(length: number): boolean {
  return length >= ASSEMBLE_FROM && (length < JOIN_FROM || length >= JOIN_BELOW);
}

/**
 * Cuts a byte stream into frames and decodes each. Splits may fall anywhere (inside the length prefix
 * too). The length is checked against `maxFrameSize` before any body is buffered, so a hostile length
 * prefix costs nothing. Each byte is copied at most once, so decoding stays linear however the stream is
 * split: a frame in one chunk is read in place; one spread over several chunks keeps them as they came
 * and is joined when it is whole; a large one (ASSEMBLE_FROM, but not JOIN_FROM to JOIN_BELOW) is copied
 * into its own buffer as its chunks arrive, each chunk let go at once.
 *
 * Joining when whole makes the last chunk's step one synchronous copy of the frame, during which the
 * process's other connections wait: 15–40 ms for 8 MiB on a 2-core machine at load 9 (159 ms once), which
 * is why large frames were first all copied as they arrived. On a quiet machine, small requests beside
 * back-to-back 8 MiB uploads measured a p99 of 13.6–16.7 ms in 7 runs with the join (JOIN_FROM), against
 * 10–14 ms copied as they arrive while the server stayed out of V8's collecting regime and 24–31 ms in
 * it, where it fell in about half the runs (with the join, in none).
 */
export class FrameDecoder {
  private readonly decoder = new Decoder();
  /** Received chunks not yet decoded: `chunks[first]` from byte `head` on, then the rest. */
  private chunks: Buffer[] = [];
  private first = 0;
  private head = 0;
  private buffered = 0;
  private held = false;
  /** The large frame body being assembled (see ASSEMBLE_FROM), and how much of it has arrived. */
  private frame: Buffer | undefined;
  private filled = 0;

  constructor(
    private readonly maxFrameSize: number,
    private readonly shortcut?: FrameShortcut,
  ) {}

  /** Bytes received but not yet decoded (a partial frame, or frames held back by `hold()`). */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Feeds bytes; calls `onValue` for each complete frame. Returns why it stopped, if the stream is bad. */
  push(chunk: Buffer, onValue: (value: unknown) => void): DecodeFailure | undefined {
    if (chunk.length > 0) {
      this.buffered += chunk.length;
      const frame = this.frame;
      if (frame !== undefined && this.filled < frame.length) {
        // Nothing else is buffered while a frame is assembled: its bytes come first.
        const part = Math.min(chunk.length, frame.length - this.filled);
        frame.set(part === chunk.length ? chunk : chunk.subarray(0, part), this.filled);
        this.filled += part;
        if (part < chunk.length) this.chunks.push(chunk.subarray(part));
      } else this.chunks.push(chunk);
    }
    return this.held ? undefined : this.deliver(onValue);
  }

  /**
   * Stops handing out frames, even in the middle of a chunk, until `release()`: the owner stopped
   * reading and wants what it already received kept, not acted on.
   */
  hold(): void {
    this.held = true;
  }

  /** Hands out the frames held back since `hold()`, and goes on as usual. */
  release(onValue: (value: unknown) => void): DecodeFailure | undefined {
    this.held = false;
    return this.deliver(onValue);
  }

  private deliver(onValue: (value: unknown) => void): DecodeFailure | undefined {
    while (!this.held) {
      const assembled = this.frame;
      if (assembled !== undefined) {
        if (this.filled < assembled.length) return undefined;
        this.frame = undefined;
        this.filled = 0;
        this.buffered -= assembled.length;
        if (this.shortcut?.(assembled, 0, assembled.length) === true) continue;
        const value = this.decodeBody(assembled);
        if (value === NOT_MESSAGEPACK) return 'notMessagePack';
        onValue(value);
        continue;
      }
      if (this.buffered < 4) return undefined;
      const length = this.peekLength();
      if (length > this.maxFrameSize) return 'oversizedFrame';
      if (length === 0) return 'emptyFrame';
      if (this.buffered < 4 + length) {
        if (assemblesAsItArrives(length) && (this.buffered - 4) * RESERVE_AFTER >= length)
          this.assemble(length);
        return undefined;
      }
      const first = this.chunks[this.first];
      if (this.shortcut !== undefined && first.length - this.head >= 4 + length) {
        // The whole frame sits in one chunk: offered in place, no view made unless the value is one.
        const start = this.head + 4;
        this.skip(4 + length);
        if (this.shortcut(first, start, start + length)) continue;
        const value = this.decodeBody(first.subarray(start, start + length));
        if (value === NOT_MESSAGEPACK) return 'notMessagePack';
        onValue(value);
        continue;
      }
      this.skip(4);
      const body = this.take(length);
      if (this.shortcut?.(body, 0, length) === true) continue;
      const value = this.decodeBody(body);
      if (value === NOT_MESSAGEPACK) return 'notMessagePack';
      onValue(value);
    }
    return undefined;
  }

  /**
   * Starts assembling the next frame (its prefix and the first part of its body are buffered, nothing
   * after it): its body so far is copied into a buffer of its own and the chunks are let go.
   */
  private assemble(length: number): void {
    this.skip(4);
    // allocUnsafe: every byte is written before the frame is handed out.
    const frame = Buffer.allocUnsafe(length);
    let at = 0;
    for (let i = this.first; i < this.chunks.length; i++) {
      const chunk = this.chunks[i];
      const from = i === this.first ? this.head : 0;
      frame.set(from === 0 ? chunk : chunk.subarray(from), at);
      at += chunk.length - from;
    }
    this.chunks = [];
    this.first = 0;
    this.head = 0;
    this.frame = frame;
    this.filled = at;
  }

  private decodeBody(body: Buffer): unknown {
    try {
      return this.decoder.decode(body);
    } catch {
      return NOT_MESSAGEPACK;
    } finally {
      forgetLargeInput(this.decoder, body);
    }
  }

  /** The next frame's length prefix (at least 4 bytes are buffered). */
  private peekLength(): number {
    const first = this.chunks[this.first];
    if (first.length - this.head >= 4) return first.readUInt32BE(this.head);
    let length = 0;
    let index = this.first;
    let at = this.head;
    for (let i = 0; i < 4; i++) {
      while (at >= this.chunks[index].length) {
        index++;
        at = 0;
      }
      length = length * 256 + this.chunks[index][at++];
    }
    return length;
  }

  private skip(count: number): void {
    while (count > 0) {
      const available = this.chunks[this.first].length - this.head;
      if (count < available) {
        this.head += count;
        this.buffered -= count;
        return;
      }
      count -= available;
      this.buffered -= available;
      this.dropFirst();
    }
  }

  /** The next `length` bytes: a view when they sit in one chunk, else one copy of exactly them. */
  private take(length: number): Buffer {
    const first = this.chunks[this.first];
    const available = first.length - this.head;
    if (length <= available) {
      const view = first.subarray(this.head, this.head + length);
      this.skip(length);
      return view;
    }
    const parts: Buffer[] = [first.subarray(this.head)];
    let gathered = available;
    let index = this.first + 1;
    while (gathered < length) {
      const chunk = this.chunks[index++];
      const part = Math.min(chunk.length, length - gathered);
      parts.push(part === chunk.length ? chunk : chunk.subarray(0, part));
      gathered += part;
    }
    const joined = Buffer.concat(parts, length);
    this.skip(length);
    return joined;
  }

  private dropFirst(): void {
    this.head = 0;
    // Let go of the consumed chunk now: slots are only compacted every 1024 chunks, and holding them
    // (64 KiB each from a socket) until then would keep up to 64 MiB of read bytes alive.
    this.chunks[this.first] = CONSUMED;
    this.first++;
    if (this.first === this.chunks.length) {
      this.chunks = [];
      this.first = 0;
    } else if (this.first >= 1024 && this.first * 2 >= this.chunks.length) {
      // Forget consumed chunks in one go, not one shift per chunk (that would be quadratic again).
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
  }
}
