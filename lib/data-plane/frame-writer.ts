import type { Socket } from 'node:net';
import { createFrameEncoder } from './frame-encoder.js';
import { FrameType, isId, type Metadata } from './frames.js';
import { nextFrameOverhead, writeNextHead } from './next-frame.js';
import { encodedPattern, requestHeadSize, writeRequestHead } from './request-frame.js';
import { smallValueSize, writeSmallValue } from './small-values.js';

const CHUNK = 64 * 1024;
/** After encoding a frame larger than this, the encoder is replaced: it would keep its grown buffer. */
const KEEP_ENCODER_BELOW = 1024 * 1024;
/**
 * A binary element of a frame (a request's data, a reply value) this long or longer is not copied into
 * the batch: the frame is written as its header, a view of the caller's bytes, and its tail.
 */
export const SEND_IN_PLACE_FROM = 64 * 1024;
/**
 * A top-level string element of a frame this long (UTF-16 units) or longer is encoded by Node's native
 * UTF-8 encoder, not by the codec: @msgpack/msgpack counts a string's UTF-8 bytes in a JavaScript loop
 * before writing them (most of its encoding time for a long string), Node counts them natively. Measured
 * per frame, this costs more than it saves below about 200 characters, and takes 0.4 x the codec's time
 * at 1 KiB, under 0.1 x from 16 KiB on. The bytes are the codec's (str 16 or str 32 header, then UTF-8,
 * a lone surrogate as U+FFFD). From 64 KiB of UTF-8 on, the string gets a buffer of its own, sent as it
 * is (not copied into the batch).
 */
export const ENCODE_STRING_NATIVELY_FROM = 256;
/** MessagePack: a fixarray header (frames have at most 15 elements), bin 32, str 16 and str 32 headers. */
const FIXARRAY = 0x90;
const BIN32 = 0xc6;
const STR16 = 0xda;
const STR32 = 0xdb;
const TRUE = 0xc3;
/**
 * A caller's burst is written in slices of this many frames rather than all at the end of the tick, so
 * the server starts working on the first slice while the caller still produces the rest (both cores
 * busy). A server's writer does not slice (`sliceEvery: Infinity`): its replies answer what one read
 * brought, already a slice of the caller's, and one write per tick is what the corked raw socket does;
 * slicing there too cost more CPU per request on both sides and some throughput (the write syscall is
 * about half of each side's busy time): 10 alternating pairs, 60,000 requests with 100 in flight, medians
 * of server / client CPU 2.16 / 1.98 µs sliced against 2.00 / 1.78 once per tick, throughput 0.92 x.
 */
export const CALLER_SLICE_FRAMES = 32;
/**
 * A stream's values (NEXT frames before the last) are sliced by bytes, on either side: a stream made in
 * one tick starts leaving before it ends, and a peer spends so little on each value that slicing by
 * frames would cost a write (a syscall) for a few hundred bytes.
 */
const FLUSH_EVERY_VALUE_BYTES = 16 * 1024;

/**
 * Something that may hold a writer's next write until later in the event loop's turn (see `EndOfTurn`):
 * `hold` takes the flush and returns true, and then calls it exactly once. `peer` names the writer's
 * peer (its instance id, `FrameWriter.peer`): a holder may let some peers' writes go at once.
 */
export interface FlushHolder {
  hold(flush: () => void, peer: string): boolean;
}

/**
 * Encodes frames into one growing buffer and writes it in a single `socket.write` per turn of the event
 * tick: many small frames cost one syscall. While the socket is not writable (not yet connected, or
 * over its high-water mark) frames keep accumulating, up to the owner's caps.
 *
 * Large frames are not copied whole: a frame's top-level binary element of SEND_IN_PLACE_FROM bytes or
 * more goes to the socket as it is (a view of the caller's bytes: they must not change until sent), and
 * an encoding over KEEP_ENCODER_BELOW is handed over as the encoder made it; a long top-level string is
 * written as UTF-8 by Node (ENCODE_STRING_NATIVELY_FROM). The batch is then a list of parts, written
 * corked (one writev), never joined.
 */
export class FrameWriter {
  /** Asked first when a write is due; undefined: the write leaves at the end of the tick. */
  holder: FlushHolder | undefined;
  /** The peer written to, as the holder knows it (its instance id). */
  peer = '';

  /**
   * @param sliceEvery frames after which a batch is written before the end of the tick (see
   *   CALLER_SLICE_FRAMES); Infinity: once per tick.
   */
  constructor(private readonly sliceEvery = CALLER_SLICE_FRAMES) {}

  private encoder = createFrameEncoder();
  private buffer = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  /** Start of the bytes of `buffer` not yet listed in `full`. */
  private sealed = 0;
  /** Parts of the batch before `buffer[sealed, used)`, in order. */
  private full: Uint8Array[] = [];
  private scheduled = false;
  private pendingFrames = 0;
  /** Bytes of stream values queued since the last write. */
  private pendingValueBytes = 0;
  private socket: Socket | undefined;
  private blocked = false;
  /** Bytes of the batch (queued since the last hand-over), removed frames included. */
  private batchLength = 0;
  /** Frames taken back before they were handed over: [start, end) offsets in the batch. */
  private removed: Array<[number, number]> = [];
  private removedBytes = 0;
  /** Counts hand-overs to the socket: a frame queued in an earlier batch can no longer be taken back. */
  batch = 0;
  /** Called after each write with nothing left queued: lets the owner settle "written" promises. */
  onFlush: (() => void) | undefined;
  /**
   * Called when a write has left the socket for the kernel (its write callback): the socket's buffer
   * shrank, so an owner capping queued bytes may queue more. Once per write, not per frame.
   */
  onSent: (() => void) | undefined;
  private readonly sent = (): void => this.onSent?.();

  /** Bytes encoded but not yet handed to the socket. */
  get queuedBytes(): number {
    return this.batchLength - this.removedBytes;
  }

  /** Where the next frame starts in the current batch (what `remove` needs to find it again). */
  get batchOffset(): number {
    return this.batchLength;
  }

  /** Starts writing to `socket` (frames written before are sent now). */
  attach(socket: Socket): void {
    this.socket = socket;
    socket.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
    this.schedule();
  }

  /** Drops everything queued (the connection is gone). */
  discard(): void {
    this.socket = undefined;
    this.full = [];
    this.used = 0;
    this.sealed = 0;
    this.batchLength = 0;
    this.removed = [];
    this.removedBytes = 0;
  }

  /**
   * Takes back a frame written at `start` (its `batchOffset`) of `batch`, `size` bytes long, if it has not
   * been handed to the socket yet. Returns false when it already was.
   */
  remove(batch: number, start: number, size: number): boolean {
    if (batch !== this.batch || this.socket?.destroyed === true) return false;
    this.removed.push([start, start + size]);
    this.removedBytes += size;
    return true;
  }

  /**
   * The codec threw on a frame (a value MessagePack cannot encode): nothing of that frame is in the batch,
   * since every write encodes all of a frame before it puts any byte of it there. The encoder, which may
   * hold a large partial encoding, is replaced.
   */
  encodeFailed(): void {
    this.encoder = createFrameEncoder();
  }

  /** One frame as bytes, outside the batch (for a frame that must go before what is queued). */
  encodeOne(frame: unknown[]): Buffer {
    const body = this.encoder.encode(frame);
    const out = Buffer.allocUnsafe(body.length + 4);
    out.writeUInt32BE(body.length, 0);
    out.set(body, 4);
    return out;
  }

  /**
   * Queues one frame and returns its size in bytes (length prefix included). A frame larger than
   * `limit` is not queued: the caller compares the size it gets back with the limit it gave.
   */
  write(frame: unknown[], limit = Infinity): number {
    // A long string value goes the generic way below: Node's native UTF-8 encoder (writeAround).
    if (isNextFrame(frame) && !isLongString(frame[2]))
      return this.writeNext(frame[1] as number, frame[2], frame.length === 4, limit);
    const inPlace = largeElementAt(frame);
    if (inPlace >= 0) return this.writeAround(frame, inPlace, limit);
    const body = this.encoder.encodeSharedRef(frame);
    const size = body.length + 4;
    if (size > limit) {
      this.releaseLargeEncoder(size);
      return size;
    }
    if (size > KEEP_ENCODER_BELOW) {
      // The encoder is dropped just below: its buffer can go to the socket as it is.
      this.appendLength(body.length);
      this.appendPart(body);
    } else {
      this.reserve(size);
      this.buffer.writeUInt32BE(body.length, this.used);
      this.buffer.set(body, this.used + 4);
      this.used += size;
    }
    return this.queued(size);
  }

  /**
   * Queues the NEXT frame `[3, id, value]` (`[3, id, value, true]` when `last`) without its array being
   * built; returns its size as `write` does.
   */
  writeValue(id: number, value: unknown, last: boolean, limit = Infinity): number {
    // A long string goes the generic way (write, then writeAround): Node's native UTF-8 encoder.
    if (isLongString(value))
      return this.write(last ? [FrameType.NEXT, id, value, true] : [FrameType.NEXT, id, value], limit);
    return this.writeNext(id, value, last, limit);
  }

  /**
   * Queues the REQUEST frame `[1, id, pattern, data]` (`[1, id, pattern, data, metadata]` with metadata)
   * without its array being built: its head by hand (the pattern's bytes kept from earlier calls), small
   * data by hand too (see small-values.ts), the rest by the encoder. Returns its size as `write` does.
   */
  writeRequest(
    id: number,
    pattern: string,
    data: unknown,
    metadata: Metadata | undefined,
    limit = Infinity,
  ): number {
    // What write() sends in place or encodes natively (a large binary, a long string) goes its way,
    // but for the usual upload, a large binary as the data: its head written here too (below).
    const inPlace = isLargeBinary(data);
    if (!isId(id) || isLongString(pattern) || (isLarge(data) && !inPlace) || isLarge(metadata))
      return this.write(
        metadata === undefined
          ? [FrameType.REQUEST, id, pattern, data]
          : [FrameType.REQUEST, id, pattern, data, metadata],
        limit,
      );
    const patternBytes = encodedPattern(pattern, this.encoder);
    const headSize = requestHeadSize(id, patternBytes);
    if (inPlace) return this.writeRequestAround(id, patternBytes, headSize, data, metadata, limit);
    // Small data by hand; what follows it (data and metadata, or metadata) in one call to the encoder,
    // which costs about as much as a small value per call: a pair is the array's header, then the two.
    // Encoded outside the frame's array, a value may nest one level deeper than the codec's depth limit
    // (100) allows inside it; such a value is written here where encoding the whole frame would throw
    // (the NEXT writer does the same). Harmless: the reader has no such limit.
    let smallSize = smallValueSize(data);
    let encoded: Uint8Array | undefined;
    if (smallSize < 0) {
      smallSize = 0;
      encoded =
        metadata === undefined
          ? this.encoder.encodeSharedRef(data)
          : this.encoder.encodeSharedRef([data, metadata]).subarray(1);
    } else if (metadata !== undefined) encoded = this.encoder.encodeSharedRef(metadata);
    const encodedSize = encoded === undefined ? 0 : encoded.length;
    const size = 4 + headSize + smallSize + encodedSize;
    if (size > limit) {
      this.releaseLargeEncoder(size);
      return size;
    }
    // A large encoding ends the frame: listed as it is, not copied (as write does with one).
    const part = encoded !== undefined && size > KEEP_ENCODER_BELOW;
    this.reserve(4 + headSize + smallSize + (part ? 0 : encodedSize));
    const buffer = this.buffer;
    let at = buffer.writeUInt32BE(size - 4, this.used);
    at = writeRequestHead(buffer, at, id, patternBytes, metadata !== undefined);
    if (smallSize > 0) at = writeSmallValue(buffer, at, data as number | Uint8Array | number[]);
    if (part) {
      this.used = at;
      this.appendPart(encoded!);
      return this.queued(size);
    }
    if (encoded !== undefined) {
      buffer.set(encoded, at);
      at += encodedSize;
    }
    this.used = at;
    return this.queued(size);
  }

  /**
   * A REQUEST frame whose data is a large binary (an upload): its head by hand, the binary listed as it
   * is (as writeAround does, bin 32 header included), then the metadata by the encoder. writeAround
   * built the frame's array and made three encodings of its own (type, id, pattern), each a new buffer,
   * for every 64 KiB request.
   */
  private writeRequestAround(
    id: number,
    patternBytes: Uint8Array,
    headSize: number,
    data: Uint8Array,
    metadata: Metadata | undefined,
    limit: number,
  ): number {
    const tail = metadata === undefined ? undefined : this.encoder.encodeSharedRef(metadata);
    const tailSize = tail === undefined ? 0 : tail.length;
    const small = 4 + headSize + 5 + tailSize;
    const size = small + data.byteLength;
    if (size > limit) {
      this.releaseLargeEncoder(small);
      return size;
    }
    this.reserve(small);
    const buffer = this.buffer;
    let at = writeRequestHead(
      buffer,
      buffer.writeUInt32BE(size - 4, this.used),
      id,
      patternBytes,
      tail !== undefined,
    );
    this.used = buffer.writeUInt32BE(data.byteLength, buffer.writeUInt8(BIN32, at));
    this.appendPart(data);
    if (tail !== undefined) {
      // Room was reserved with the head: the metadata goes after the binary, in the same buffer.
      at = this.used;
      buffer.set(tail, at);
      this.used = at + tailSize;
    }
    this.batchLength += size;
    this.releaseLargeEncoder(small);
    this.written();
    return size;
  }

  /**
   * A NEXT frame (a stream's value, a reply) written straight into the batch: its array, type and id by
   * hand, and its value too when it is a small one (see small-values.ts), else by the encoder.
   * A large binary or a large encoding is listed as it is, not copied (as in write and writeAround).
   */
  private writeNext(id: number, value: unknown, last: boolean, limit: number): number {
    let valueSize = smallValueSize(value);
    const encoded = valueSize < 0 ? this.encoder.encodeSharedRef(value) : undefined;
    if (encoded !== undefined) valueSize = encoded.length;
    const overhead = nextFrameOverhead(id, last);
    const size = 4 + overhead + valueSize;
    if (size > limit) {
      this.releaseLargeEncoder(size);
      return size;
    }
    let part: Uint8Array | undefined;
    if (isLargeBinary(value)) part = value;
    else if (encoded !== undefined && size > KEEP_ENCODER_BELOW) part = encoded;
    this.reserve(part === undefined ? size : 4 + overhead + 5);
    const buffer = this.buffer;
    let at = writeNextHead(buffer, buffer.writeUInt32BE(size - 4, this.used), id, last);
    if (part !== undefined) {
      // The bin 32 header of a binary, then the value's bytes as they are.
      if (part === value) at = buffer.writeUInt32BE(part.byteLength, buffer.writeUInt8(BIN32, at));
      this.used = at;
      this.appendPart(part);
      at = this.used;
    } else if (encoded === undefined) at = writeSmallValue(buffer, at, value as number | Uint8Array);
    else {
      buffer.set(encoded, at);
      at += encoded.length;
    }
    if (last) buffer[at++] = TRUE;
    this.used = at;
    this.batchLength += size;
    this.releaseLargeEncoder(size);
    if (last) this.written();
    else if ((this.pendingValueBytes += size) >= FLUSH_EVERY_VALUE_BYTES) this.flush();
    else this.schedule();
    return size;
  }

  /**
   * A frame whose element `at` is a large binary or a long string: the elements around it encoded, the
   * binary not copied, the string written as UTF-8 straight into the batch or into a buffer of its own.
   */
  private writeAround(frame: unknown[], at: number, limit: number): number {
    const element = frame[at];
    const text = typeof element === 'string' ? element : undefined;
    const elementLength = text === undefined ? (element as Uint8Array).byteLength : Buffer.byteLength(text);
    // In the batch: a string under 64 KiB of UTF-8 (str 16), written there directly; the rest is a part.
    const inBatch = text !== undefined && elementLength < SEND_IN_PLACE_FROM ? elementLength : 0;
    const before: Uint8Array[] = [];
    const after: Uint8Array[] = [];
    let small = 1 + (inBatch > 0 ? 3 : 5); // array header, str 16 or bin / str 32 header
    for (let i = 0; i < frame.length; i++) {
      if (i === at) continue;
      const bytes = this.encoder.encode(frame[i]);
      small += bytes.length;
      (i < at ? before : after).push(bytes);
    }
    this.releaseLargeEncoder(small);
    const bodyLength = small + elementLength;
    const size = bodyLength + 4;
    if (size > limit) return size;
    this.reserve(4 + small + inBatch);
    let offset = this.buffer.writeUInt32BE(bodyLength, this.used);
    offset = this.buffer.writeUInt8(FIXARRAY | frame.length, offset);
    for (const bytes of before) {
      this.buffer.set(bytes, offset);
      offset += bytes.length;
    }
    if (inBatch > 0) {
      offset = this.buffer.writeUInt16BE(elementLength, this.buffer.writeUInt8(STR16, offset));
      this.used = offset + this.buffer.write(text!, offset, elementLength);
    } else {
      offset = this.buffer.writeUInt8(text === undefined ? BIN32 : STR32, offset);
      this.used = this.buffer.writeUInt32BE(elementLength, offset);
      let part = element as Uint8Array;
      if (text !== undefined) {
        // allocUnsafe: every byte is written just below, no need to zero them first.
        part = Buffer.allocUnsafe(elementLength);
        (part as Buffer).write(text);
      }
      this.appendPart(part);
    }
    for (const bytes of after) {
      this.buffer.set(bytes, this.used);
      this.used += bytes.length;
    }
    this.batchLength += size;
    this.written();
    return size;
  }

  /** A frame of `size` bytes was put in the batch. */
  private queued(size: number): number {
    this.batchLength += size;
    this.releaseLargeEncoder(size);
    this.written();
    return size;
  }

  private written(): void {
    if (++this.pendingFrames >= this.sliceEvery) this.flush();
    else this.schedule();
  }

  private appendLength(length: number): void {
    this.reserve(4);
    this.used = this.buffer.writeUInt32BE(length, this.used);
  }

  /** Lists `part` after what the buffer holds, without copying it. */
  private appendPart(part: Uint8Array): void {
    if (this.used > this.sealed) this.full.push(this.buffer.subarray(this.sealed, this.used));
    this.full.push(part);
    this.sealed = this.used;
  }

  private releaseLargeEncoder(size: number): void {
    if (size > KEEP_ENCODER_BELOW) this.encoder = createFrameEncoder();
  }

  /** Room for `size` more bytes in `buffer` (a new buffer once the current one is full). */
  private reserve(size: number): void {
    if (this.used + size <= this.buffer.length) return;
    if (this.used > this.sealed) this.full.push(this.buffer.subarray(this.sealed, this.used));
    this.buffer = Buffer.allocUnsafe(Math.max(CHUNK, size));
    this.used = 0;
    this.sealed = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.socket === undefined) return;
    this.scheduled = true;
    if (this.holder?.hold(this.scheduledFlush, this.peer) === true) return;
    // After the current run and its promise callbacks: frames produced together (a chunk of requests
    // and the replies their handlers resolve) leave in one write, without waiting a loop turn.
    process.nextTick(this.scheduledFlush);
  }

  private readonly scheduledFlush = (): void => {
    this.scheduled = false;
    this.flush();
  };

  private flush(): void {
    const socket = this.socket;
    if (socket === undefined || this.blocked || socket.destroyed) return;
    if (this.used === 0 && this.full.length === 0) return;
    this.pendingFrames = 0;
    this.pendingValueBytes = 0;
    let ok = true;
    const sent = this.onSent === undefined ? undefined : this.sent;
    if (this.removed.length > 0) {
      const data = this.withoutRemoved();
      this.full = [];
      if (this.buffer.length > CHUNK) this.buffer = Buffer.allocUnsafe(CHUNK);
      if (data.length > 0) ok = socket.write(data, sent);
    } else if (this.full.length === 0) {
      // The socket keeps what it is given until sent: hand it a copy and reuse the buffer.
      ok = socket.write(Buffer.from(this.buffer.subarray(0, this.used)), sent);
    } else {
      if (this.used > this.sealed) this.full.push(this.buffer.subarray(this.sealed, this.used));
      // Corked, the parts leave in one writev: no copy of a large part to join them.
      socket.cork();
      const last = this.full.length - 1;
      for (let i = 0; i < last; i++) ok = socket.write(this.full[i]) && ok;
      ok = socket.write(this.full[last], sent) && ok;
      socket.uncork();
      this.full = [];
      // The socket holds views of the buffer until sent: go on in the rest of it (a new one per write
      // would cost 64 KiB for the few header bytes of a large value).
      this.buffer = this.buffer.subarray(this.used);
    }
    this.used = 0;
    this.sealed = 0;
    this.batch++;
    this.batchLength = 0;
    if (!ok) this.blocked = true;
    this.onFlush?.();
  }

  /** The batch as one buffer, without the frames taken back. */
  private withoutRemoved(): Buffer {
    const parts =
      this.used > this.sealed ? [...this.full, this.buffer.subarray(this.sealed, this.used)] : this.full;
    const gaps = this.removed.sort((a, b) => a[0] - b[0]);
    const out = Buffer.allocUnsafe(this.batchLength - this.removedBytes);
    let written = 0;
    let offset = 0; // of the current part in the batch
    let gap = 0;
    for (const part of parts) {
      let from = 0;
      while (from < part.length) {
        const at = offset + from;
        while (gap < gaps.length && gaps[gap][1] <= at) gap++;
        if (gap < gaps.length && gaps[gap][0] <= at) {
          from = Math.min(part.length, gaps[gap][1] - offset);
          continue;
        }
        const until = gap < gaps.length ? Math.min(part.length, gaps[gap][0] - offset) : part.length;
        out.set(part.subarray(from, until), written);
        written += until - from;
        from = until;
      }
      offset += part.length;
    }
    this.removed = [];
    this.removedBytes = 0;
    return out;
  }
}

/** `[3, id, value]` or `[3, id, value, true]` with a valid id: what `writeNext` writes. */
function isNextFrame(frame: unknown[]): boolean {
  if (frame[0] !== FrameType.NEXT || (frame.length !== 3 && !(frame.length === 4 && frame[3] === true)))
    return false;
  const id = frame[1];
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffffffff;
}

/** A string long enough for Node's native encoder (see ENCODE_STRING_NATIVELY_FROM). */
function isLongString(value: unknown): boolean {
  return typeof value === 'string' && value.length >= ENCODE_STRING_NATIVELY_FROM;
}

/** A binary sent in place rather than copied into the batch (see SEND_IN_PLACE_FROM). */
function isLargeBinary(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.byteLength >= SEND_IN_PLACE_FROM;
}

/** What write() would not copy whole as an element of a frame: a large binary or a long string. */
function isLarge(value: unknown): boolean {
  return isLongString(value) || isLargeBinary(value);
}

/**
 * Index of the frame's top-level binary element of SEND_IN_PLACE_FROM bytes or more, else of its longest
 * string of ENCODE_STRING_NATIVELY_FROM or more (a long pattern must not hide a large payload); -1 if none.
 */
function largeElementAt(frame: unknown[]): number {
  let longest = -1;
  let longestLength = ENCODE_STRING_NATIVELY_FROM - 1;
  for (let i = 1; i < frame.length; i++) {
    const value = frame[i];
    if (isLargeBinary(value)) return i;
    if (typeof value === 'string' && value.length > longestLength) {
      longest = i;
      longestLength = value.length;
    }
  }
  return longest;
}
