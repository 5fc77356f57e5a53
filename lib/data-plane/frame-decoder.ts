import { Decoder } from '@msgpack/msgpack';

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
 * Cuts a byte stream into frames and decodes each. Splits may fall anywhere (inside the length prefix
 * too). The length is checked against `maxFrameSize` before any body is buffered, so a hostile length
 * prefix costs nothing. Received chunks are kept as they came and each byte is copied at most once (a
 * frame spread over several chunks is joined when it is whole), so decoding stays linear however the
 * stream is split.
 */
export class FrameDecoder {
  private readonly decoder = new Decoder();
  /** Received chunks not yet decoded: `chunks[first]` from byte `head` on, then the rest. */
  private chunks: Buffer[] = [];
  private first = 0;
  private head = 0;
  private buffered = 0;
  private held = false;

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
      this.chunks.push(chunk);
      this.buffered += chunk.length;
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
    while (this.buffered >= 4 && !this.held) {
      const length = this.peekLength();
      if (length > this.maxFrameSize) return 'oversizedFrame';
      if (length === 0) return 'emptyFrame';
      if (this.buffered < 4 + length) return undefined;
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

  private decodeBody(body: Buffer): unknown {
    try {
      return this.decoder.decode(body);
    } catch {
      return NOT_MESSAGEPACK;
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
