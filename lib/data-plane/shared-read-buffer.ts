import net from 'node:net';

/**
 * Bytes one read may bring: Node's own read size for sockets (a larger buffer read more per syscall,
 * but made the caller's bursts larger and measured no faster). One buffer, shared by every connection
 * this process accepts: each read is copied out before the next one starts.
 */
export const SHARED_READ_BUFFER_SIZE = 64 * 1024;

let shared: Buffer | undefined;

/** What a re-homed socket calls with each read: `bytes` is valid during the call only. */
export type OnRead = (bytes: Buffer, length: number) => void;

interface HandleCarrier {
  _handle?: { useUserBuffer?: unknown } | null;
}

/**
 * Moves an accepted plain TCP connection (accepted paused, `pauseOnConnect`) onto a socket that reads
 * into the shared buffer and hands each read to `onRead`; returns that socket, or undefined when this
 * Node does not offer it (the caller then reads `socket` as usual).
 *
 * Why: Node gives every read of an accepted socket 64 KiB of new memory. An 8 MiB upload is then 128
 * such blocks plus the frame they are copied into, and the dead blocks wait for V8's next young
 * collection while they count toward its global allocation limit. When an early full collection set
 * the heap growing factor to 1.1 (V8 does when little is promoted, the steady state of a transport), the
 * limit was about 24 MB above the live heap, and a full collection followed every one to three frames
 * (13-27 in a run instead of 2) at half the throughput: the server fell into that regime in about half
 * of the two-process 8 MiB runs. Reading into one reused buffer leaves the frame as the only new memory
 * an upload takes (see FrameDecoder.pushCopy). Interleaved A/B, two processes, 4 in flight, Kable / raw
 * socket per run: 8 MiB 1.00, 1.19, 0.46, 1.11, 1.30, 0.73 against 0.52, 0.96, 0.73, 0.89, 0.60, 0.55
 * before; 1 MiB 1.08, 0.92, 0.85, 1.03, 1.00, 0.67 against 0.76, 0.71, 0.61, 0.87, 0.75, 0.88.
 * Node's `onread` option reads so for sockets the caller creates; for accepted ones there is no public
 * way, so the accepted socket's handle is taken over (feature-detected: `_handle` with `useUserBuffer`;
 * without them, the socket is read as usual). TLS sockets are read as usual.
 *
 * The original socket object stays as Node's server counts it: it is destroyed when the new one closes
 * (it no longer owns the connection, so that only settles the server's count and its 'close' listeners).
 */
export function rehome(socket: net.Socket, onRead: OnRead): net.Socket | undefined {
  const carrier = socket as unknown as HandleCarrier;
  const handle = carrier._handle;
  if (handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function') return undefined;
  shared ??= Buffer.allocUnsafe(SHARED_READ_BUFFER_SIZE);
  carrier._handle = null;
  const buffer = shared;
  const rehomed = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer,
      callback: (length: number) => {
        onRead(buffer, length);
        return true;
      },
    },
  } as net.SocketConstructorOpts);
  rehomed.once('close', () => socket.destroy());
  return rehomed;
}
