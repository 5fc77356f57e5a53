import { KableOptionsError } from '../node/errors.js';
import { NODE_OPTION_NAMES } from '../node/validate-options.js';
import type { LivenessOptions } from '../data-plane/peer-liveness.js';
import type { TlsFiles } from '../data-plane/secure-channel.js';
import type { KableNode } from '../node/kable-node.js';
import type { KableOptions } from '../node/options.js';

/** Options of `new KableServer(...)`: the node's options plus the data plane's. */
export interface KableServerOptions extends KableOptions {
  /** Service id; replicas of one service share it. Required unless `node` is given. */
  id?: string;
  /**
   * Largest data-plane frame accepted, bytes (default 16 MiB). Clients learn it when they connect and
   * refuse larger requests themselves (KABLE_PAYLOAD_TOO_LARGE); a larger frame that still arrives
   * closes its connection.
   */
  maxFrameSize?: number;
  /**
   * Unsent reply bytes of one connection past which the server stops reading that client's requests,
   * until they drain to half (default 8 MiB).
   */
  writeHighWaterMark?: number;
  /**
   * Unsent reply bytes of one connection past which a stream still emitting on it is cut with a
   * KABLE_BACKPRESSURE error and its Observable unsubscribed (default 128 MiB): Observables cannot be
   * paused, so this bounds what a stream to a slow caller holds.
   */
  maxStreamBacklog?: number;
  /** Most data-plane connections at once (default 10000); more are closed as they arrive. */
  maxConnections?: number;
  /**
   * Most data-plane connections at once from one remote address, TLS handshakes included (default 1000,
   * at most maxConnections); more are closed as they arrive, counted as `dataPlane.dropped.tooManyFromAddress`.
   * On loopback every local process shares 127.0.0.1: each client opens one connection per replica.
   */
  maxConnectionsPerAddress?: number;
  /**
   * Milliseconds a new connection may take to send its first frame (a Kable client's HELLO, written as
   * soon as it connects; over TLS, counted from the end of the handshake) before it is closed (default
   * 2000), counted as `dataPlane.dropped.helloTimeout`.
   */
  helloTimeout?: number;
  /**
   * Milliseconds of silence allowed in the middle of a frame before its connection is closed (default
   * 10000), counted as `dataPlane.dropped.partialFrameTimeout`. Not while this server has stopped reading
   * the connection itself (writeHighWaterMark).
   */
  partialFrameTimeout?: number;
  /** Milliseconds a TLS handshake may take (default 2000; Node's own is 120 s), counted as `dataPlane.dropped.handshakeTimeout`. */
  handshakeTimeout?: number;
  /**
   * Milliseconds a connection with no request in flight and nothing arriving is kept before it is
   * closed (default 300000), counted as `dataPlane.idleClosed`. Kable clients close their idle
   * connections first (their own `idleTimeout`, 120000 by default, so a request never meets this close):
   * keep this above one and a half times the clients'.
   */
  idleTimeout?: number;
  /** Most requests in flight on one connection (default 10000); more are refused, retryably. */
  maxInFlightPerConnection?: number;
  /** Serve on this existing node (KableModule's shared node) instead of creating one. */
  node?: KableNode;
  /**
   * Certificate-based mutual TLS on the data plane (PEM key, cert, ca). Default: with a cluster `key`,
   * TLS 1.3 with a key derived from it; with neither, plain TCP.
   */
  tls?: TlsFiles;
  /** On close, milliseconds to let requests in flight finish before the node goes DOWN (default 10000). */
  drainTimeout?: number;
  /**
   * On close, milliseconds the node stays STOPPED (answering new requests with a retryable refusal) so
   * that every peer has seen it leave before its connections close (default 500).
   */
  leaveGrace?: number;
}

/** Options of KableClientProxy, as given to `ClientsModule.register([{ customClass: KableClientProxy, options }])`. */
export interface KableClientOptions extends KableOptions {
  /** Id of the client's own node (default 'kable-client'; client nodes are replicas unless `replica: false`). */
  id?: string;
  /** Only route to nodes of this service id (default: any service that handles the pattern). */
  target?: string;
  /** Milliseconds to wait for a RUNNING node that handles the pattern (default 10000). */
  pickTimeout?: number;
  /** Milliseconds a whole request may take, first reply to completion (default 30000). */
  timeout?: number;
  /** Extra attempts on other replicas when a request fails before it left (default 2). */
  retries?: number;
  /**
   * Largest data-plane frame accepted from servers, bytes (default 16 MiB). Servers learn it when the
   * connection opens: a larger reply reaches the caller as a KABLE_PAYLOAD_TOO_LARGE error instead.
   */
  maxFrameSize?: number;
  /**
   * Bytes queued for one server and not yet sent (default 32 MiB). A request that does not fit goes to
   * another replica with room if one serves it, else waits for room in order, within its `timeout`
   * (never encoded while it waits, never on a timer; the replica is not avoided for it). An event that
   * does not fit fails at once with KABLE_BACKPRESSURE and is retried on another replica. A request or
   * event larger than this whole cap fails at once with KABLE_PAYLOAD_TOO_LARGE.
   */
  maxQueuedBytes?: number;
  /**
   * Most requests pending on one connection, queued, in flight or waiting for room (default 10000); more
   * fail at once with KABLE_BACKPRESSURE and are retried on another replica.
   */
  maxPending?: number;
  /**
   * Requests and events whose data is a binary (`Buffer`, `Uint8Array`) of at least this many bytes, or
   * a string of at least this many characters, go over a second connection to the same server (default
   * 262144, 256 KiB; at least 1024; `false`: one connection for everything). A frame leaves its
   * connection whole, so a small request queued behind an 8 MiB upload would wait for all of it; in a
   * lane of their own, bulk uploads leave small requests' latency alone. Only the data's top level is
   * looked at, and replies travel on their request's connection.
   */
  bulkThreshold?: number | false;
  /** Use this existing node (KableModule's shared node) instead of creating one. */
  node?: KableNode;
  /** Mutual TLS on the data plane, as for KableServer (default: TLS-PSK with a `key`, else plain TCP). */
  tls?: TlsFiles;
  /**
   * Data-plane liveness: a peer silent for `probeAfter` ms (default 250) while requests wait on it is sent
   * a PING; one that answers nothing within `answerWithin` ms more (default 500) gets no new request until
   * it does. `false` turns it off (a stalled peer is then avoided only when discovery evicts it).
   */
  liveness?: Partial<LivenessOptions> | false;
  /**
   * Milliseconds a connection to a server may go with nothing pending before this client closes it
   * (default 120000; it closes within one and a half times this); the next request opens a new one.
   * Closing first, the client never has a request caught by the server's own idle close (its
   * `idleTimeout`, 300000 by default): keep this under two thirds of the servers'.
   */
  idleTimeout?: number;
  /**
   * How a replica is chosen for a request (default 'round-robin'). 'round-robin': in turn, in the
   * cluster-wide order, over replicas that are RUNNING and answer PINGs and, with `excludeUnhealthy`, are
   * neither latency outliers nor ejected. Equal replicas get exactly equal shares. 'least-latency': the
   * cheaper of two random replicas by peak-EWMA latency x (requests in flight + 1); shares follow speed,
   * not turns.
   */
  balance?: 'round-robin' | 'least-latency';
  /**
   * Leave latency outliers and failing replicas out of the rotation, sending them one probe a second
   * until they recover (default true). A latency outlier: beside at least two other replicas of its
   * service, its typical reply time went over 3x their median and over 5 ms at least 500 ms and 5 replies
   * ago and has not fallen to 2x since, and its last 3 replies were each over 3x (a replica stalled for a
   * moment is not one);
   * it is back after two probe replies in a row within 2x the median. Ejected: 5 consecutive lost
   * connections, timeouts or internal errors (never an RpcException), for 30 s x consecutive ejections,
   * at most 300 s. At most a third of a service's replicas are left out (one of two to five). `false`:
   * plain round robin over every RUNNING, responsive replica (the estimates are still kept for
   * 'least-latency' and the stats).
   */
  excludeUnhealthy?: boolean;
  /**
   * Affinity keys by pattern (default: none). Each function receives a request's or event's data and
   * returns its key, or undefined for none; requests and events with the same key go to the same
   * replica of a service, on every caller (rendezvous hashing over the replicas' `host:port`), unless
   * it is over the load bound: see docs/affinity.md. Requests without a key are balanced as usual.
   *
   * Keyed by the pattern's route, as Kable routes it: a string pattern as it is, an object pattern as
   * Nest's JSON text of it with its keys sorted, such as `'{"cmd":"get"}'` for `{ cmd: 'get' }`. A
   * key given per call (`new KableRecord(data, { affinityKey })`) or by a dispatch hook in the packet
   * metadata (`KABLE_AFFINITY_METADATA`, Nest 12) comes first. A function that throws fails its request
   * with what it threw; one that returns something other than a string, a finite number or undefined
   * fails it with KABLE_AFFINITY_KEY.
   *
   * `affinity: { 'orders.get': (order) => order.customerId }`
   */
  affinity?: Record<string, (data: any) => string | number | undefined>;
  /**
   * A keyed request whose replica is over the load bound looks again once, at the end of the event
   * loop's turn, before it passes to the key's next replica (default true). The counts it went by may be
   * a moment old: that replica's replies may already be received, in a socket this caller reads later in
   * the same turn. With it, calls for keys outside the 10 hottest reach their home about 90% of the time
   * in bench/affinity.ts, against 72-76% without, at the price of that wait (at most the rest of the
   * turn) for about a third of the keyed requests of a caller that keeps 64 in flight; while requests
   * wait, the client's writes wait with them, so that the turn's requests leave in one write per
   * connection. `false`: pass on at once. See docs/affinity.md.
   */
  affinityRecheck?: boolean;
}

export const CLIENT_DEFAULTS = {
  id: 'kable-client',
  pickTimeout: 10_000,
  timeout: 30_000,
  retries: 2,
  balance: 'round-robin',
  excludeUnhealthy: true,
  affinityRecheck: true,
} as const;

const NODE_KEYS = NODE_OPTION_NAMES;

/** Keeps only what the node core accepts (it rejects unknown options to catch typos). */
export function nodeOptionsOf(options: KableOptions): KableOptions {
  const picked: Record<string, unknown> = {};
  for (const key of NODE_KEYS) if (options[key] !== undefined) picked[key] = options[key];
  return picked as KableOptions;
}

const SERVER_KEYS = new Set<string>([
  ...NODE_KEYS,
  'id',
  'maxFrameSize',
  'writeHighWaterMark',
  'maxStreamBacklog',
  'maxConnections',
  'maxConnectionsPerAddress',
  'helloTimeout',
  'partialFrameTimeout',
  'handshakeTimeout',
  'idleTimeout',
  'maxInFlightPerConnection',
  'node',
  'drainTimeout',
  'leaveGrace',
  'tls',
]);

export const SERVER_DEFAULTS = { drainTimeout: 10_000, leaveGrace: 500 } as const;
const CLIENT_KEYS = new Set<string>([
  ...NODE_KEYS,
  'id',
  'target',
  'timeout',
  'retries',
  'maxFrameSize',
  'maxQueuedBytes',
  'maxPending',
  'bulkThreshold',
  'node',
  'tls',
  'liveness',
  'idleTimeout',
  'balance',
  'excludeUnhealthy',
  'affinity',
  'affinityRecheck',
]);

/** A misspelt option would otherwise be ignored silently: name it and list what is accepted. */
export function rejectUnknownOptions(options: object, who: 'KableServer' | 'KableClientProxy'): void {
  const known = who === 'KableServer' ? SERVER_KEYS : CLIENT_KEYS;
  for (const key of Object.keys(options)) {
    if (key === 'serializer' || key === 'deserializer')
      throw new KableOptionsError(unsupportedCodec(who, key));
    if (!known.has(key)) {
      throw new KableOptionsError(`${who} has no option "${key}"; it accepts ${[...known].join(', ')}.`);
    }
  }
}

/**
 * Nest's `serializer`/`deserializer` turn packets into a transport's wire format (JSON text for TCP).
 * Kable's wire format is its own binary frames, which carry pattern, data and metadata as MessagePack:
 * a codec cannot be slotted in without changing the protocol, so it is refused rather than ignored.
 */
function unsupportedCodec(
  who: 'KableServer' | 'KableClientProxy',
  key: 'serializer' | 'deserializer',
): string {
  const instead =
    who === 'KableClientProxy'
      ? 'transform values in a subclass that overrides serializeResponse()/serializeError() (both are applied to what send() delivers), or in the handler'
      : 'transform values in the handler, an interceptor or an exception filter';
  return (
    `${who} does not take a "${key}": Kable frames carry pattern, data and metadata as MessagePack ` +
    `(plain objects, arrays, strings, numbers, booleans, null, binary and Dates travel as they are); ${instead}.`
  );
}
