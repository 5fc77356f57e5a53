/**
 * How long a data-plane server lets one connection hold its slot without doing its part. Without these
 * a socket that connects and sends nothing (or the first bytes of a frame, then nothing) keeps a slot of
 * `maxConnections` and up to a frame of memory for ever, and enough of them shut out every real caller.
 */
export interface ConnectionDeadlines {
  /**
   * Milliseconds from accepting a connection (over TLS: from the end of its handshake) to its first
   * frame, a Kable client's HELLO, which it writes as soon as it is connected.
   */
  helloTimeout: number;
  /** Milliseconds of silence in the middle of a frame (its first bytes came, the rest does not). */
  partialFrameTimeout: number;
  /** Milliseconds a TLS handshake may take (Node's own default is 120 s). */
  handshakeTimeout: number;
  /**
   * Milliseconds a connection with nothing in flight and nothing arriving is kept. Kable callers close
   * their own idle connections sooner (the client's `idleTimeout`), so this only closes what is not a
   * well-behaved Kable caller: see SERVER_IDLE_TIMEOUT.
   */
  idleTimeout: number;
  /** Most connections open at once from one remote address (counting TLS handshakes in progress). */
  maxConnectionsPerAddress: number;
}

/**
 * Idle closing races with a request: a server that closes an idle connection just as its caller writes
 * a request on it makes that request KABLE_PEER_LOST (it may have been read), which is not retried.
 * So the caller closes first: a Kable client closes its own connection once nothing has been pending on
 * it for CLIENT_IDLE_TIMEOUT (within one and a half times that), and the next request simply opens a
 * new one. The server's idle close, well after that, is only the safety net against sockets that are not
 * Kable callers or misbehave, and no Kable caller with the defaults ever meets it. Whoever raises the
 * client's idleTimeout keeps it under two thirds of the servers'.
 */
export const SERVER_IDLE_TIMEOUT = 300_000;
export const CLIENT_IDLE_TIMEOUT = 120_000;

export const CONNECTION_DEADLINE_DEFAULTS: ConnectionDeadlines = Object.freeze({
  // A few liveness windows (750 ms): a client answers its connect at once, even a busy one.
  helloTimeout: 2000,
  partialFrameTimeout: 10_000,
  handshakeTimeout: 2000,
  idleTimeout: SERVER_IDLE_TIMEOUT,
  // A tenth of maxConnections: on loopback every process of a local cluster shares 127.0.0.1, and each
  // client opens one connection per replica it calls, so a cluster of hundreds of processes still fits.
  maxConnectionsPerAddress: 1000,
});
