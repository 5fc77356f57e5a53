import { Decoder } from '@msgpack/msgpack';

export type DecodeFailure = 'oversizedFrame' | 'emptyFrame' | 'notMessagePack';

/**
 * Cuts a byte stream into frames and decodes each. Splits may fall anywhere (inside the length prefix
 * too). The length is checked against `maxFrameSize` before any body is buffered, so a hostile length
 * prefix costs nothing; a partial frame is kept as a list of chunks and joined once, when complete.
 */
export class FrameDecoder {
  private readonly decoder = new Decoder();
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameSize: number) {}

  /** Bytes held for a frame not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Feeds bytes; calls `onValue` for each complete frame. Returns why it stopped, if the stream is bad. */
  push(chunk: Buffer, onValue: (value: unknown) => void): DecodeFailure | undefined {
    let buffer: Buffer;
    if (this.buffered === 0) buffer = chunk;
    else {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      // Join only once the pending frame is whole (or its length prefix still incomplete).
      const needed = this.neededBytes();
      if (needed !== undefined && this.buffered < needed)
        return needed - 4 > this.maxFrameSize ? 'oversizedFrame' : undefined;
      buffer = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
    }
    let offset = 0;
    while (buffer.length - offset >= 4) {
      const length = buffer.readUInt32BE(offset);
      if (length > this.maxFrameSize) return 'oversizedFrame';
      if (length === 0) return 'emptyFrame';
      if (buffer.length - offset - 4 < length) break;
      let value: unknown;
      try {
        value = this.decoder.decode(buffer.subarray(offset + 4, offset + 4 + length));
      } catch {
        return 'notMessagePack';
      }
      offset += 4 + length;
      onValue(value);
    }
    if (offset < buffer.length) {
      const rest = buffer.subarray(offset);
      this.chunks = [rest];
      this.buffered = rest.length;
    }
    return undefined;
  }

  /** Total bytes of the frame being buffered, once its length prefix is known. */
  private neededBytes(): number | undefined {
    if (this.buffered < 4) return undefined;
    const head = this.chunks[0].length >= 4 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const length = head.readUInt32BE(0);
    if (length > this.maxFrameSize) return length + 4;
    return length + 4;
  }
}
