import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Advert, AdvertSource } from '../node/advert.js';
import type { DiscoveryHandlers, DiscoveryTransport } from '../node/discovery-transport.js';
import { advertFromArray, advertToArray, decodeValue, encodeValue } from './advert-codec.js';
import { SEAL_OVERHEAD } from './advert-seal.js';

/** Options of `new MemoryBus(options)`. */
export interface MemoryBusOptions {
  /** Share of deliveries dropped, 0 to 1 (default 0), drawn per receiver like real UDP loss. */
  loss?: number;
  /** Milliseconds each delivery is delayed (default 0: next turn of the event loop). */
  delay?: number;
  /** Source of randomness for loss (default Math.random); pass a seeded one for reproducible runs. */
  random?: () => number;
  /** Return false to drop one delivery: lets a test lose chosen adverts or cut chosen links. */
  filter?: (advert: Advert, from: AdvertSource, to: AdvertSource) => boolean;
  /**
   * Passes every advert through the UDP codec (default false): receivers get what a datagram would have
   * carried, and each delivery has the size of the sealed datagram.
   */
  codec?: boolean;
  /**
   * Models each receiver's socket buffer (default: unbounded): at most this many bytes are queued
   * between two reads, and a receiver reads once per millisecond; what does not fit is dropped and
   * counted in `overruns`. Bytes as Linux counts them: each datagram plus DATAGRAM_OVERHEAD (the
   * kernel charges a queued datagram its whole buffer). Linux's default is 212,992 bytes.
   */
  receiveBuffer?: number;
}

/** What the kernel charges a queued datagram beyond its payload (its buffer's true size), roughly. */
export const DATAGRAM_OVERHEAD = 640;
/** Size of an advert when the bus does not encode: a typical sealed advert. */
const NOMINAL_SIZE = 200;

/**
 * An in-process stand-in for the network, for tests and simulations of large clusters: every advert
 * sent by one transport reaches every other started transport of the same bus, asynchronously.
 * Adverts are shared objects, not copies: receivers must treat them as read-only (the node does).
 */
export interface MemoryBusEvents {
  /** One advert reaching (or, when `dropped`, not reaching) one receiver: lets tests wait on traffic. */
  delivery: [advert: Advert, from: AdvertSource, to: AdvertSource, dropped: boolean];
}

/** An in-process stand-in for the network (see MemoryBusEvents): for tests and simulations. */
export class MemoryBus extends EventEmitter<MemoryBusEvents> {
  /** Share of deliveries dropped, 0 to 1; may be changed while running. */
  loss: number;
  /** Milliseconds each delivery is delayed; may be changed while running. */
  delay: number;
  /** Drops the deliveries it returns false for; may be changed while running. */
  filter: MemoryBusOptions['filter'];
  /** Whether adverts go through the UDP codec. */
  codec: boolean;
  /** Each receiver's modelled socket buffer, bytes (undefined: unbounded). */
  receiveBuffer: number | undefined;
  private readonly random: () => number;
  private readonly members = new Set<MemoryTransport>();
  private queue: Array<{ advert: Advert; from: MemoryTransport; size: number }> = [];
  private scheduled = false;
  private nextAddress = 1;
  /** Deliveries made. */
  delivered = 0;
  /** Deliveries dropped (loss or filter). */
  dropped = 0;
  /** Deliveries dropped because the receiver's buffer was full (see receiveBuffer). */
  overruns = 0;

  constructor(options: MemoryBusOptions = {}) {
    super();
    this.loss = options.loss ?? 0;
    this.delay = options.delay ?? 0;
    this.random = options.random ?? Math.random;
    this.filter = options.filter;
    this.codec = options.codec ?? false;
    this.receiveBuffer = options.receiveBuffer;
  }

  /** A new transport on this bus, to give a node as `discovery.transport`. */
  transport(): DiscoveryTransport {
    return new MemoryTransport(this, { address: 'memory', port: this.nextAddress++ });
  }

  /** @internal */
  join(member: MemoryTransport): void {
    this.members.add(member);
  }

  /** @internal */
  leave(member: MemoryTransport): void {
    this.members.delete(member);
  }

  /** @internal */
  publish(original: Advert, from: MemoryTransport): void {
    let advert = original;
    let size = NOMINAL_SIZE;
    if (this.codec) {
      // The envelope UdpTransport seals: boot id, sequence number, timestamp, advert.
      const encoded = encodeValue([from.boot, ++from.datagrams, Date.now(), advertToArray(original)]);
      size = encoded.length + SEAL_OVERHEAD;
      const decoded = advertFromArray((decodeValue(encoded) as unknown[])[3]);
      if (decoded === undefined) throw new Error('The advert codec refused an advert the node built.');
      advert = decoded;
    }
    if (this.delay > 0) {
      setTimeout(() => this.deliver(advert, from, size), this.delay).unref();
      return;
    }
    // Batching a turn's adverts into one setImmediate keeps a thousand-node burst cheap.
    this.queue.push({ advert, from, size });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const { advert, from, size } of batch) this.deliver(advert, from, size);
  }

  private get watched(): boolean {
    return this.listenerCount('delivery') > 0;
  }

  private deliver(advert: Advert, from: MemoryTransport, size: number): void {
    const now = Date.now();
    for (const member of this.members) {
      if (member === from) continue;
      if (
        (this.loss > 0 && this.random() < this.loss) ||
        (this.filter && !this.filter(advert, from.source, member.source)) ||
        (this.receiveBuffer !== undefined && !this.fits(member, size, now))
      ) {
        this.dropped++;
        if (this.watched) this.emit('delivery', advert, from.source, member.source, true);
        continue;
      }
      this.delivered++;
      member.receive(advert, from.source);
      if (this.watched) this.emit('delivery', advert, from.source, member.source, false);
    }
  }

  /** Whether one more datagram fits the receiver's buffer in this millisecond (between two reads). */
  private fits(member: MemoryTransport, size: number, now: number): boolean {
    const tick = Math.floor(now);
    if (member.readAt !== tick) {
      member.readAt = tick;
      member.buffered = 0;
    }
    const charged = size + DATAGRAM_OVERHEAD;
    if (member.buffered + charged > (this.receiveBuffer ?? Infinity)) {
      this.overruns++;
      member.overruns++;
      return false;
    }
    member.buffered += charged;
    return true;
  }
}

class MemoryTransport implements DiscoveryTransport {
  /** Like UdpTransport's: identifies this transport's datagrams in the codec's envelope. */
  readonly boot = randomBytes(8).toString('hex');
  datagrams = 0;
  /** The receive-buffer model's state: the millisecond of the last read, and bytes queued since. */
  readAt = -1;
  buffered = 0;
  overruns = 0;
  private handlers: DiscoveryHandlers | undefined;
  private sent = 0;
  private received = 0;

  constructor(
    private readonly bus: MemoryBus,
    readonly source: AdvertSource,
  ) {}

  async start(handlers: DiscoveryHandlers): Promise<void> {
    this.handlers = handlers;
    this.bus.join(this);
  }

  send(advert: Advert): void {
    if (this.handlers === undefined) return;
    this.sent++;
    this.bus.publish(advert, this);
  }

  async stop(): Promise<void> {
    this.bus.leave(this);
    this.handlers = undefined;
  }

  stats(): Record<string, number> {
    return { datagramsSent: this.sent, datagramsReceived: this.received, overruns: this.overruns };
  }

  receive(advert: Advert, source: AdvertSource): void {
    if (this.handlers === undefined) return;
    this.received++;
    this.handlers.advert(advert, source);
  }
}
