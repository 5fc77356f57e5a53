import { EventEmitter } from 'node:events';
import type { PeerConnection, PeerConnectionOptions } from './peer-connection.js';
import { PeerPool, type PeerAddress, type PeerPoolEvents } from './peer-pool.js';

/** Data of at least this many bytes (a binary) or characters (a string) travels in the bulk lane. */
export const DEFAULT_BULK_THRESHOLD = 256 * 1024;

/**
 * Two connections per peer: one for ordinary requests and one, opened on first use, for bulk ones (a
 * request or event whose data is a large binary or string). Frames leave a connection whole and in
 * order, so a small request queued behind an 8 MiB upload on the same socket waits for all of it to be
 * written (about 20 ms on loopback, far more on a LAN); in a lane of their own, uploads leave the small
 * requests' latency alone. Only the data's top level is looked at (a `Buffer` or a string: constant
 * time); an object holding a large binary goes in the ordinary lane. Replies travel on their request's
 * connection, so a large reply to a small request still shares the ordinary lane.
 *
 * The balancer and the liveness verdict see the peer, not the lane: requests in flight are summed, and
 * a peer is unresponsive while either of its connections is.
 */
export class PeerLanes extends EventEmitter<PeerPoolEvents> {
  private readonly main: PeerPool;
  private readonly bulk: PeerPool;
  private readonly unresponsive = new Set<string>();

  constructor(
    options: PeerConnectionOptions,
    /** See DEFAULT_BULK_THRESHOLD; false: one connection per peer for everything. */
    private readonly threshold: number | false = DEFAULT_BULK_THRESHOLD,
  ) {
    super();
    this.main = new PeerPool(options);
    this.bulk = new PeerPool(options);
    const onLiveness = (iid: string): void => {
      const responsive = this.main.isResponsive(iid) && this.bulk.isResponsive(iid);
      if (responsive ? !this.unresponsive.delete(iid) : this.unresponsive.has(iid)) return;
      if (!responsive) this.unresponsive.add(iid);
      this.emit('liveness', iid, responsive);
    };
    this.main.on('liveness', onLiveness);
    this.bulk.on('liveness', onLiveness);
  }

  /** Whether `data` goes in the bulk lane. */
  isBulk(data: unknown): boolean {
    const threshold = this.threshold;
    if (threshold === false) return false;
    if (typeof data === 'string') return data.length >= threshold;
    return data instanceof Uint8Array && data.byteLength >= threshold;
  }

  /** The connection to `peer` in the ordinary lane, or in the bulk lane. */
  get(peer: PeerAddress, bulk = false): PeerConnection {
    return (bulk ? this.bulk : this.main).get(peer);
  }

  /** Requests to this peer not answered yet, both lanes. */
  inFlight(iid: string): number {
    return this.main.inFlight(iid) + this.bulk.inFlight(iid);
  }

  hasRoom(iid: string, bulk = false): boolean {
    return (bulk ? this.bulk : this.main).hasRoom(iid);
  }

  waitingForRoom(iid: string, bulk = false): number {
    return (bulk ? this.bulk : this.main).waitingForRoom(iid);
  }

  isResponsive(iid: string): boolean {
    return !this.unresponsive.has(iid);
  }

  /** See PeerPool.drop: both lanes. */
  drop(iid: string, departed?: string, letFinish = false): void {
    this.main.drop(iid, departed, letFinish);
    this.bulk.drop(iid, departed, letFinish);
  }

  /** See PeerPool.retain: both lanes. */
  retain(isKnown: (iid: string) => boolean, departed: string): void {
    this.main.retain(isKnown, departed);
    this.bulk.retain(isKnown, departed);
  }

  /** Instance ids of the peers with a connection in either lane. */
  peers(): string[] {
    return [...new Set([...this.main.peers(), ...this.bulk.peers()])];
  }

  reopen(): void {
    this.main.reopen();
    this.bulk.reopen();
  }

  close(): void {
    this.main.close();
    this.bulk.close();
    this.unresponsive.clear();
  }

  /** Both lanes' counters added up; `bulkConnectionsOpened` says how many were bulk ones. */
  stats(): Record<string, number> {
    const main = this.main.stats();
    const bulk = this.bulk.stats();
    const sum: Record<string, number> = {};
    for (const key of Object.keys(main)) sum[key] = main[key] + (bulk[key] ?? 0);
    sum.unresponsivePeers = this.unresponsive.size;
    sum.bulkConnectionsOpened = bulk.connectionsOpened;
    return sum;
  }
}
