import { PeerConnection, type PeerConnectionOptions } from './peer-connection.js';

export interface PeerAddress {
  iid: string;
  host: string;
  port: number;
}

/**
 * One persistent connection per peer instance, made on first use and replaced when it broke or the
 * peer moved. Bounded by the cluster's size: connections of removed peers are dropped by the owner.
 */
export class PeerPool {
  private readonly connections = new Map<string, PeerConnection>();
  private closed = false;
  private opened = 0;
  /** Bytes of connections already replaced or dropped. */
  private readonly closedBytes = { in: 0, out: 0 };

  constructor(private readonly options: PeerConnectionOptions = {}) {}

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
    if (existing !== undefined) this.retire(existing);
    const connection = new PeerConnection(peer.host, peer.port, this.options);
    if (this.closed) connection.close();
    else {
      this.opened++;
      this.connections.set(peer.iid, connection);
    }
    return connection;
  }

  drop(iid: string): void {
    const connection = this.connections.get(iid);
    if (connection !== undefined) this.retire(connection);
    this.connections.delete(iid);
  }

  /** Serves again after close() (a client connected again). */
  reopen(): void {
    this.closed = false;
  }

  close(): void {
    this.closed = true;
    for (const connection of this.connections.values()) this.retire(connection);
    this.connections.clear();
  }

  stats(): Record<string, number> {
    const held = { pending: 0, bufferedBytes: 0, emitsWaiting: 0 };
    let bytesIn = this.closedBytes.in;
    let bytesOut = this.closedBytes.out;
    for (const connection of this.connections.values()) {
      const holding = connection.holding;
      held.pending += holding.pending;
      held.bufferedBytes += holding.bufferedBytes;
      held.emitsWaiting += holding.emitsWaiting;
      bytesIn += connection.bytes.in;
      bytesOut += connection.bytes.out;
    }
    return {
      connectionsOpen: this.connections.size,
      connectionsOpened: this.opened,
      ...held,
      bytesIn,
      bytesOut,
    };
  }

  private retire(connection: PeerConnection): void {
    connection.close();
    const { in: read, out: written } = connection.bytes;
    this.closedBytes.in += read;
    this.closedBytes.out += written;
  }
}
