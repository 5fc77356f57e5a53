import { EventEmitter } from 'node:events';
import type { Advert, AdvertSource } from '../node/advert.js';
import type { DiscoveryHandlers, DiscoveryTransport } from '../node/discovery-transport.js';

export interface MemoryBusOptions {
  /** Share of deliveries dropped, 0 to 1 (default 0), drawn per receiver like real UDP loss. */
  loss?: number;
  /** Milliseconds each delivery is delayed (default 0: next turn of the event loop). */
  delay?: number;
  /** Source of randomness for loss (default Math.random); pass a seeded one for reproducible runs. */
  random?: () => number;
  /** Return false to drop one delivery: lets a test lose chosen adverts or cut chosen links. */
  filter?: (advert: Advert, from: AdvertSource, to: AdvertSource) => boolean;
}

/**
 * An in-process stand-in for the network, for tests and simulations of large clusters: every advert
 * sent by one transport reaches every other started transport of the same bus, asynchronously.
 * Adverts are shared objects, not copies: receivers must treat them as read-only (the node does).
 */
export interface MemoryBusEvents {
  /** One advert reaching (or, when `dropped`, not reaching) one receiver: lets tests wait on traffic. */
  delivery: [advert: Advert, from: AdvertSource, to: AdvertSource, dropped: boolean];
}

export class MemoryBus extends EventEmitter<MemoryBusEvents> {
  loss: number;
  delay: number;
  filter: MemoryBusOptions['filter'];
  private readonly random: () => number;
  private readonly members = new Set<MemoryTransport>();
  private queue: Array<{ advert: Advert; from: MemoryTransport }> = [];
  private scheduled = false;
  private nextAddress = 1;
  delivered = 0;
  dropped = 0;

  constructor(options: MemoryBusOptions = {}) {
    super();
    this.loss = options.loss ?? 0;
    this.delay = options.delay ?? 0;
    this.random = options.random ?? Math.random;
    this.filter = options.filter;
  }

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
  publish(advert: Advert, from: MemoryTransport): void {
    if (this.delay > 0) {
      setTimeout(() => this.deliver(advert, from), this.delay).unref();
      return;
    }
    // Batching a turn's adverts into one setImmediate keeps a thousand-node burst cheap.
    this.queue.push({ advert, from });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const { advert, from } of batch) this.deliver(advert, from);
  }

  private get watched(): boolean {
    return this.listenerCount('delivery') > 0;
  }

  private deliver(advert: Advert, from: MemoryTransport): void {
    for (const member of this.members) {
      if (member === from) continue;
      if (
        (this.loss > 0 && this.random() < this.loss) ||
        (this.filter && !this.filter(advert, from.source, member.source))
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
}

class MemoryTransport implements DiscoveryTransport {
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
    return { datagramsSent: this.sent, datagramsReceived: this.received };
  }

  receive(advert: Advert, source: AdvertSource): void {
    if (this.handlers === undefined) return;
    this.received++;
    this.handlers.advert(advert, source);
  }
}
