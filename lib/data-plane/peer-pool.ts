import { EventEmitter } from 'node:events';
import { PeerConnection, type PeerConnectionOptions } from './peer-connection.js';

export interface PeerAddress {
  iid: string;
  host: string;
  port: number;
}

export interface PeerPoolEvents {
  /** A peer stopped answering its PINGs (false) or answered again (true). */
  liveness: [iid: string, responsive: boolean];
}

/**
 * One persistent connection per peer instance, made on first use and replaced when it broke or the
 * peer moved. Bounded by the cluster's size: the owner drops the connections of peers that left.
 */
export class PeerPool extends EventEmitter<PeerPoolEvents> {
  private readonly connections = new Map<string, PeerConnection>();
  /** Connections dropped but left to answer their requests in flight (see drop()): close() ends them too. */
  private readonly retiring = new Set<PeerConnection>();
  private readonly unresponsive = new Set<string>();
  private closed = false;
  private opened = 0;
  /** Bytes of connections already replaced or dropped. */
  private readonly closedBytes = { in: 0, out: 0 };
  private dropped = 0;
  private lapses = 0;
  private pingsOfDropped = 0;
  /** Requests that waited for room on connections already replaced or dropped. */
  private roomWaitsOfClosed = 0;
  /** Well-formed frames of a type this version does not know (a later minor's): ignored. */
  private unknownFrames = 0;
  private idleClosed = 0;

  constructor(private readonly options: PeerConnectionOptions = {}) {
    super();
  }

  get(peer: PeerAddress): PeerConnection {
    const existing = this.connections.get(peer.iid);
    if (
      existing !== undefined &&
      !existing.closed &&
      existing.host === peer.host &&
      existing.port === peer.port
    ) {
      return existing;
    }
    if (existing !== undefined) this.closeCounted(existing);
    const connection = new PeerConnection(peer.host, peer.port, {
      ...this.options,
      peer: peer.iid,
      onUnknownFrame: () => {
        this.unknownFrames++;
      },
      onLiveness: (responsive) => {
        if (this.connections.get(peer.iid) === connection) this.setResponsive(peer.iid, responsive);
      },
      onStatus: (status) => {
        this.options.onStatus?.(status);
        if (status !== 'closed') return;
        this.retiring.delete(connection);
        if (this.connections.get(peer.iid) !== connection) return;
        // A broken connection says nothing of liveness any more: the next one is judged afresh.
        this.setResponsive(peer.iid, true);
        if (connection.closedIdle) {
          // Closed by this side with nothing pending: forgotten now, the next request connects anew.
          this.idleClosed++;
          this.connections.delete(peer.iid);
          this.countBytes(connection);
        }
      },
    });
    if (this.closed) connection.close();
    else {
      this.opened++;
      this.connections.set(peer.iid, connection);
      // A fresh connection has its own verdict to reach.
      this.setResponsive(peer.iid, true);
    }
    return connection;
  }

  /** Requests to this peer not answered yet (0 without a connection). */
  inFlight(iid: string): number {
    return this.connections.get(iid)?.inFlight ?? 0;
  }

  /** Whether a request to this peer would be queued now rather than wait for room (true without a connection). */
  hasRoom(iid: string): boolean {
    return this.connections.get(iid)?.hasRoom ?? true;
  }

  /** Requests waiting for room in the queue toward this peer (0 without a connection). */
  waitingForRoom(iid: string): number {
    return this.connections.get(iid)?.waitingForRoom ?? 0;
  }

  /** False while the peer does not answer its PINGs. */
  isResponsive(iid: string): boolean {
    return !this.unresponsive.has(iid);
  }

  /**
   * Forgets the peer's connection and closes it; its requests in flight fail with KABLE_PEER_LOST, saying
   * how it `departed`. With `letFinish`, a peer the liveness probe has not found unresponsive keeps the
   * connection until its requests in flight are answered (a live peer evicted because its adverts were
   * lost still answers them), or until the probe finds it unresponsive.
   */
  drop(iid: string, departed?: string, letFinish = false): void {
    const connection = this.connections.get(iid);
    if (connection === undefined) return;
    this.connections.delete(iid);
    this.dropped++;
    this.pingsOfDropped += connection.liveness?.pingsSent ?? 0;
    this.setResponsive(iid, true);
    if (letFinish && departed !== undefined) {
      connection.retire(departed);
      if (!connection.closed) this.retiring.add(connection);
      this.countBytes(connection);
    } else this.closeCounted(connection, departed);
  }

  /**
   * Drops every connection whose peer `isKnown` no longer knows (one evicted in the same sweep, or one
   * forgotten meanwhile); like drop() with `letFinish`, since why it went is not known here.
   */
  retain(isKnown: (iid: string) => boolean, departed: string): void {
    for (const iid of [...this.connections.keys()]) if (!isKnown(iid)) this.drop(iid, departed, true);
  }

  /** Instance ids of the peers with a connection. */
  peers(): string[] {
    return [...this.connections.keys()];
  }

  /** Serves again after close() (a client connected again). */
  reopen(): void {
    this.closed = false;
  }

  close(): void {
    this.closed = true;
    for (const connection of this.connections.values()) this.closeCounted(connection);
    this.connections.clear();
    // Their requests fail with KABLE_PEER_LOST as the others' do: nothing outlives the client.
    for (const connection of [...this.retiring]) connection.close();
    this.retiring.clear();
    this.unresponsive.clear();
  }

  stats(): Record<string, number> {
    let pings = this.pingsOfDropped;
    const held = { pending: 0, bufferedBytes: 0, emitsWaiting: 0, waitingForRoom: 0 };
    let roomWaits = this.roomWaitsOfClosed;
    let bytesIn = this.closedBytes.in;
    let bytesOut = this.closedBytes.out;
    for (const connection of this.connections.values()) {
      pings += connection.liveness?.pingsSent ?? 0;
      const holding = connection.holding;
      held.pending += holding.pending;
      held.bufferedBytes += holding.bufferedBytes;
      held.emitsWaiting += holding.emitsWaiting;
      held.waitingForRoom += holding.waitingForRoom;
      roomWaits += holding.roomWaits;
      bytesIn += connection.bytes.in;
      bytesOut += connection.bytes.out;
    }
    return {
      connectionsOpen: this.connections.size,
      connectionsOpened: this.opened,
      connectionsDropped: this.dropped,
      connectionsRetiring: this.retiring.size,
      connectionsClosedIdle: this.idleClosed,
      unresponsivePeers: this.unresponsive.size,
      unresponsiveLapses: this.lapses,
      pingsSent: pings,
      unknownFrames: this.unknownFrames,
      ...held,
      roomWaits,
      bytesIn,
      bytesOut,
    };
  }

  /** Closes a connection the pool lets go of, keeping its byte counts for stats(). */
  private closeCounted(connection: PeerConnection, departed?: string): void {
    connection.close(departed);
    this.countBytes(connection);
  }

  /** Bytes of a connection the pool no longer holds (one left to finish counts what it moved so far). */
  private countBytes(connection: PeerConnection): void {
    const { in: read, out: written } = connection.bytes;
    this.closedBytes.in += read;
    this.closedBytes.out += written;
    this.roomWaitsOfClosed += connection.holding.roomWaits;
  }

  private setResponsive(iid: string, responsive: boolean): void {
    if (responsive ? !this.unresponsive.delete(iid) : this.unresponsive.has(iid)) return;
    if (!responsive) {
      this.unresponsive.add(iid);
      this.lapses++;
    }
    this.emit('liveness', iid, responsive);
  }
}
