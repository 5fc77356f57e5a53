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
    existing?.close();
    const connection = new PeerConnection(peer.host, peer.port, this.options);
    if (this.closed) connection.close();
    else {
      this.opened++;
      this.connections.set(peer.iid, connection);
    }
    return connection;
  }

  drop(iid: string): void {
    this.connections.get(iid)?.close();
    this.connections.delete(iid);
  }

  /** Serves again after close() (a client connected again). */
  reopen(): void {
    this.closed = false;
  }

  close(): void {
    this.closed = true;
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }

  stats(): Record<string, number> {
    const held = { pending: 0, bufferedBytes: 0, emitsWaiting: 0 };
    for (const connection of this.connections.values()) {
      const holding = connection.holding;
      held.pending += holding.pending;
      held.bufferedBytes += holding.bufferedBytes;
      held.emitsWaiting += holding.emitsWaiting;
    }
    return { connectionsOpen: this.connections.size, connectionsOpened: this.opened, ...held };
  }
}
