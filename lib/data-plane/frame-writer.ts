import { Encoder } from '@msgpack/msgpack';
import type { Socket } from 'node:net';

const CHUNK = 64 * 1024;
/**
 * A burst is written in slices of this many frames rather than all at the end of the tick, so the peer
 * starts working on the first slice while this side still produces the rest (both cores busy).
 */
const FLUSH_EVERY_FRAMES = 32;

/**
 * Encodes frames into one growing buffer and writes it in a single `socket.write` per turn of the event
 * tick: many small frames cost one syscall. While the socket is not writable (not yet connected, or
 * over its high-water mark) frames keep accumulating, up to the owner's caps.
 */
export class FrameWriter {
  private readonly encoder = new Encoder({ ignoreUndefined: true });
  private buffer = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private full: Buffer[] = [];
  private scheduled = false;
  private pendingFrames = 0;
  private socket: Socket | undefined;
  private blocked = false;
  /** Called after each write with nothing left queued: lets the owner settle "written" promises. */
  onFlush: (() => void) | undefined;

  /** Bytes encoded but not yet handed to the socket. */
  get queuedBytes(): number {
    let total = this.used;
    for (const buffer of this.full) total += buffer.length;
    return total;
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
  }

  /** One frame as bytes, outside the batch (for a frame that must go before what is queued). */
  encodeOne(frame: unknown[]): Buffer {
    const body = this.encoder.encode(frame);
    const out = Buffer.allocUnsafe(body.length + 4);
    out.writeUInt32BE(body.length, 0);
    out.set(body, 4);
    return out;
  }

  write(frame: unknown[]): void {
    const body = this.encoder.encodeSharedRef(frame);
    const size = body.length + 4;
    if (this.used + size > this.buffer.length) this.rotate(size);
    this.buffer.writeUInt32BE(body.length, this.used);
    this.buffer.set(body, this.used + 4);
    this.used += size;
    if (++this.pendingFrames >= FLUSH_EVERY_FRAMES) this.flush();
    else this.schedule();
  }

  private rotate(size: number): void {
    if (this.used > 0) this.full.push(this.buffer.subarray(0, this.used));
    this.buffer = Buffer.allocUnsafe(Math.max(CHUNK, size));
    this.used = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.socket === undefined) return;
    this.scheduled = true;
    // After the current run and its promise callbacks: frames produced together (a chunk of requests
    // and the replies their handlers resolve) leave in one write, without waiting a loop turn.
    process.nextTick(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const socket = this.socket;
    if (socket === undefined || this.blocked || socket.destroyed) return;
    if (this.used === 0 && this.full.length === 0) return;
    this.pendingFrames = 0;
    let data: Buffer;
    if (this.full.length === 0) {
      // The socket keeps what it is given until sent: hand it a copy and reuse the buffer.
      data = Buffer.from(this.buffer.subarray(0, this.used));
    } else {
      if (this.used > 0) this.full.push(this.buffer.subarray(0, this.used));
      data = Buffer.concat(this.full);
      this.full = [];
      this.buffer = Buffer.allocUnsafe(CHUNK);
    }
    this.used = 0;
    if (!socket.write(data)) this.blocked = true;
    this.onFlush?.();
  }
}
