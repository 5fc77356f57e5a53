import type { ReadPacket, WritePacket } from '@nestjs/microservices';
import { ClientProxy } from '@nestjs/microservices';
import { Observable, Subject, connectable, defer, mergeMap, type Observer } from 'rxjs';
import { PeerLanes } from '../data-plane/peer-lanes.js';
import { kable } from '../kable.js';
import type { KableNode, KableNodeEvents } from '../node/kable-node.js';
import { LeastLatency } from '../node/least-latency.js';
import type { PeerRecord } from '../node/peer-record.js';
import { ReplicaHealth } from '../node/replica-health.js';
import { KableError } from '../node/errors.js';
import { EndOfTurn } from '../node/end-of-turn.js';
import { KeysInFlight } from '../node/keys-in-flight.js';
import { keyHash } from '../node/rendezvous.js';
import { milliseconds } from '../node/validate-options.js';
import { loadTelemetry, telemetry, type OutboundTrace } from '../telemetry/telemetry.js';
import type { RemovalReason } from '../node/registry.js';
import { CLIENT_DEFAULTS, nodeOptionsOf, type KableClientOptions } from './kable.options.js';
import { KABLE_AFFINITY_METADATA, KableRecord } from './kable-record.js';
import { OutboundRequest, type RequestSettings } from './outbound-request.js';
import { PatternCatalog } from './pattern-catalog.js';
import { channelFor } from './secure-data-plane.js';
import { fastPatternRoute } from './pattern-route.js';
import { PatternRouter } from './pattern-router.js';
import { RequestDeadlines } from './request-deadlines.js';
import { validateClientOptions } from './validate-client-options.js';

/** The client's status events: connected once its node has joined, disconnected once it left. */
export type KableClientStatus = 'connected' | 'disconnected';

type Listener = (...args: any[]) => void;

/** Milliseconds a DESCRIBE (fetching a node's pattern list) may take. */
const DESCRIBE_TIMEOUT = 5000;

/**
 * Nest client for Kable: routes each pattern to a RUNNING node that handles it, round robin, over one
 * persistent connection per peer.
 *
 * ClientsModule.register([{ name: 'MATH', customClass: KableClientProxy, options: { target: 'math' } }])
 */
export class KableClientProxy extends ClientProxy {
  /** The node this client routes with (its own, or the shared one given as `node`). */
  readonly node: KableNode;
  private readonly ownsNode: boolean;
  private readonly settings: RequestSettings;
  /** The `affinity` option's functions by route, if any. */
  private readonly affinity: Map<string, (data: any) => unknown> | undefined;
  private readonly pool: PeerLanes;
  private readonly catalog: PatternCatalog;
  private readonly router: PatternRouter;
  /** Each replica's latency estimate and failures, as this client sees them. */
  private readonly health: ReplicaHealth;
  /** Keyed requests in flight per affinity key: a key with some sheds first at a loaded replica. */
  private readonly keysInFlight = new KeysInFlight();
  /**
   * Keyed requests whose replica was over its load limit, looking again once the turn's replies are read
   * (the `affinityRecheck` option; undefined when it is false).
   */
  private readonly endOfTurn: EndOfTurn | undefined;
  /** Every request's `timeout`, on one timer. */
  private readonly deadlines = new RequestDeadlines((error) =>
    this.requestThrew('Failing a request at its timeout', error),
  );
  private connecting: Promise<void> | undefined;
  private joined = false;
  /** Stops this client's metrics (OpenTelemetry installed only). */
  private unobserve: (() => void) | undefined;

  /** A subclass overrides serializeResponse or serializeError: replies pass through them, as in Nest. */
  private readonly translates: boolean;

  constructor(options: KableClientOptions = {}) {
    super();
    const nest = ClientProxy.prototype as unknown as Record<'serializeResponse' | 'serializeError', unknown>;
    this.translates =
      this.serializeResponse !== nest.serializeResponse || this.serializeError !== nest.serializeError;
    const resolved = validateClientOptions(options);
    this.settings = resolved;
    this.affinity = resolved.affinity;
    this.endOfTurn = resolved.affinityRecheck
      ? new EndOfTurn((error) => this.requestThrew('Sending a keyed request at the end of a turn', error))
      : undefined;
    if (options.node !== undefined) {
      this.node = options.node;
      this.ownsNode = false;
    } else {
      const nodeOptions = nodeOptionsOf(options);
      this.node = kable(options.id ?? CLIENT_DEFAULTS.id, { replica: true, ...nodeOptions });
      this.ownsNode = true;
    }
    this.pool = new PeerLanes(
      {
        hello: { iid: this.node.iid, id: this.node.id },
        connect: channelFor(this.node, options.tls).connect,
        eventTimeout: resolved.timeout,
        ...(resolved.maxFrameSize === undefined ? {} : { maxFrameSize: resolved.maxFrameSize }),
        ...(resolved.maxQueuedBytes === undefined ? {} : { maxQueuedBytes: resolved.maxQueuedBytes }),
        ...(resolved.maxPending === undefined ? {} : { maxPending: resolved.maxPending }),
        liveness: resolved.liveness,
        idleTimeout: resolved.idleTimeout,
        ...(this.endOfTurn === undefined ? {} : { flushHolder: this.endOfTurn }),
      },
      resolved.bulkThreshold,
    );
    this.catalog = new PatternCatalog((peer) => this.pool.get(peer).describe(DESCRIBE_TIMEOUT));
    const load = (peer: PeerRecord): number => this.pool.inFlight(peer.iid);
    const health = new ReplicaHealth(
      (service) => this.node.running(service).length,
      undefined,
      undefined,
      resolved.excludeUnhealthy,
    );
    this.health = health;
    this.router = new PatternRouter(
      this.node,
      this.catalog,
      options.target,
      resolved.maxWaiters,
      load,
      health,
      resolved.balance === 'least-latency'
        ? () =>
            new LeastLatency<PeerRecord>((peer) => {
              const replica = health.peek(peer.iid);
              const estimate = replica === undefined ? 0 : replica.decayed(performance.now());
              return estimate * (load(peer) + 1);
            })
        : undefined,
    );
    this.pool.on('liveness', (iid, responsive) => {
      // Back from a hang: the requests that timed out in it do not keep the replica ejected.
      if (responsive) health.revived(iid);
      this.router.setResponsive(iid, responsive);
    });
    this.follow();
  }

  /**
   * Follows the cluster for this client (again after close(), as Nest allows connect() then): departed
   * peers' connections, and this client's counters in node.stats() as `client.*` (connections, requests
   * pending, partial frames, requests waiting for a node, liveness).
   */
  private follow(): void {
    this.pool.reopen();
    this.router.attach();
    this.node.off('peer:removed', this.onPeerRemoved);
    this.node.on('peer:removed', this.onPeerRemoved);
    countClientStats(this.node, this.statsOfClient);
  }

  private readonly statsOfClient = (): Record<string, number> => ({
    ...this.pool.stats(),
    waitingForNode: this.router.waiting,
    ...this.health.stats(),
  });

  /**
   * The replicas this client sends only probes to, with the reason: 'latency' (far slower than the
   * service's others) or 'failures' (ejected after consecutive failed replies).
   */
  excludedReplicas(): {
    /** The replica's instance id. */
    iid: string;
    /** Why it is left out: far slower than the others, or ejected after consecutive failures. */
    reason: 'latency' | 'failures';
    /** Its peak-EWMA latency estimate, ms (what 'least-latency' compares). */
    estimateMs: number;
    /** Its smoothed typical reply time, ms (what the outlier rule compares). */
    typicalMs: number;
  }[] {
    return this.health.excluded();
  }

  /**
   * A peer that left (DOWN) or was evicted: its connection is forgotten and closed, and requests still
   * on it fail with KABLE_PEER_LOST instead of waiting for their timeout: at once, or, for an evicted peer
   * the liveness probe has not found unresponsive (its adverts may just have been lost), once the probe
   * does; if it answers them meanwhile, they succeed.
   */
  private readonly onPeerRemoved = (peer: PeerRecord, reason: RemovalReason): void => {
    const departed = departure(reason, this.node.nodeTimeout);
    this.pool.drop(peer.iid, departed, reason === 'timeout');
    this.health.forget(peer.iid);
    // And any connection made to a peer already forgotten (a request routed just before it left).
    this.pool.retain((iid) => this.node.peer(iid) !== undefined, departed);
  };

  /** Joins the cluster (idempotent; again after close(), as Nest allows); requests call it themselves. */
  connect(): Promise<void> {
    if (this.connecting === undefined) this.follow();
    this.connecting ??= (async () => {
      await Promise.all([this.node.join(true), loadTelemetry()]);
      this.unobserve ??= telemetry.active?.observe(this.node, () => this.pool.stats());
      this.joined = true;
      this._status$.next('connected' satisfies KableClientStatus);
    })().catch((error: unknown) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  async close(): Promise<void> {
    this.connecting = undefined;
    this.joined = false;
    this.unobserve?.();
    this.unobserve = undefined;
    // Keyed requests waiting for the turn's end are sent now, so that closing fails them with the others.
    this.endOfTurn?.run();
    this.router.dispose();
    this.node.off('peer:removed', this.onPeerRemoved);
    // Fails the requests sent. Those still waiting for a node keep their deadline (and the one timer,
    // until the last of them ends), as each kept its own timer before: the list never drops a request.
    this.pool.close();
    uncountClientStats(this.node, this.statsOfClient);
    if (this.ownsNode) await this.node.down();
    this._status$.next('disconnected' satisfies KableClientStatus);
  }

  /**
   * Failing a request on its deadline, or sending one that waited for the end of a turn, threw (its
   * subscriber is told through rxjs, which reports its own errors, so this would be Kable's fault): said
   * as a warning, and the other requests due go on.
   */
  private requestThrew(what: string, error: unknown): void {
    try {
      this.node.emit('warning', {
        code: 'KABLE_LISTENER_ERROR',
        message: `${what} threw: ${String(error)}`,
      });
    } catch {
      // A warning listener that throws has nobody left to tell.
    }
  }

  /** Forwards the node's events: peer:added, peer:state, peer:removed, peer:updated, state, error, warning. */
  override on(event: any, callback: any): void {
    this.node.on(event as keyof KableNodeEvents, callback as Listener);
  }

  /** The node this client routes with. */
  unwrap<T = KableNode>(): T {
    return this.node as T;
  }

  /** Nodes this client skips because they stopped answering its PINGs (see the `liveness` option). */
  unresponsiveNodes(): PeerRecord[] {
    return this.router
      .unresponsiveNodes()
      .map((iid) => this.node.peer(iid))
      .filter((peer): peer is PeerRecord => peer !== undefined);
  }

  /** RUNNING nodes that handle a message pattern right now, in the order requests walk them. */
  nodesFor(pattern: unknown): readonly PeerRecord[] {
    return this.router.candidates(this.normalizePattern(pattern as never), 'messages');
  }

  /**
   * Resolves once at least `count` RUNNING nodes serve the message pattern (default 1), waiting up to
   * `timeout` ms (default: the client's pickTimeout); rejects with KABLE_NO_NODE otherwise. For startup
   * checks and health probes.
   */
  async whenServed(
    pattern: unknown,
    options: { count?: number; timeout?: number } = {},
  ): Promise<readonly PeerRecord[]> {
    await this.connect();
    const route = this.normalizePattern(pattern as never);
    const count = options.count ?? 1;
    return this.router.waitFor(
      () => {
        const nodes = this.router.candidates(route, 'messages');
        return nodes.length >= count ? nodes : undefined;
      },
      `pattern "${route}" on ${count} node(s)`,
      options.timeout === undefined
        ? this.settings.pickTimeout
        : milliseconds('timeout', options.timeout, 'whenServed() option '),
      undefined,
      options.timeout === undefined ? 'pickTimeout' : 'timeout',
    );
  }

  /**
   * Sends a request to one replica that serves the pattern. `data` may be a {@link KableRecord}: the
   * handler receives its `data`, and its `affinityKey` chooses the replica (see the `affinity` option).
   */
  override send<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    let callKey: unknown;
    let payload: unknown = data;
    if (isRecord(data)) {
      callKey = data.options.affinityKey;
      payload = data.data;
    }
    // Nest's own check: it fails with its InvalidMessageException before doing anything else.
    if (pattern === undefined || pattern === null || payload === undefined || payload === null) {
      return super.send(pattern, payload);
    }
    const request$ = new Observable<TResult>((subscriber) => {
      const packet = this.packetOf(pattern, payload);
      const route = this.normalizePattern(pattern);
      let key: number | undefined;
      if (callKey !== undefined || packet.metadata !== undefined || this.affinity !== undefined) {
        try {
          key = this.affinityKey(callKey, packet, route);
        } catch (error) {
          subscriber.error(error);
          return;
        }
      }
      const trace = telemetry.active?.outbound('request', route, packet.metadata);
      const request = new OutboundRequest(
        this.deadlines,
        this.router,
        this.pool,
        this.settings,
        route,
        packet.data,
        trace === undefined ? packet.metadata : trace.metadata,
        this.translates
          ? translated(
              subscriber as Observer<unknown>,
              (value) => this.serializeResponse(value),
              (error) => this.serializeError(error),
            )
          : (subscriber as Observer<unknown>),
        trace,
        key,
        this.keysInFlight,
        this.endOfTurn,
      );
      request.start();
      return request;
    });
    // Once joined, skip the connect step: a deferred promise per request costs a few microtask turns.
    if (this.joined && this.node.state.state !== 'DOWN') return request$;
    return defer(() => this.connect()).pipe(mergeMap(() => request$));
  }

  /**
   * Sends an event to one replica of every service that handles it. `data` may be a
   * {@link KableRecord}: the handlers receive its `data`, and its `affinityKey` chooses each service's
   * replica (see the `affinity` option).
   */
  override emit<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    let callKey: unknown;
    let payload: unknown = data;
    if (isRecord(data)) {
      callKey = data.options.affinityKey;
      payload = data.data;
    }
    if (pattern === undefined || pattern === null || payload === undefined || payload === null) {
      return super.emit(pattern, payload);
    }
    // Hot, as Nest's own emit: the event goes out whether or not anyone subscribes.
    const source = defer(async () => {
      await this.connect();
      const packet = this.packetOf(pattern, payload);
      return this.dispatchEvent(
        packet,
        this.affinityKey(callKey, packet, this.normalizePattern(packet.pattern)),
      );
    });
    const hot = connectable(source, { connector: () => new Subject(), resetOnDisconnect: false });
    hot.connect();
    return hot as Observable<TResult>;
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const subscription = this.send(packet.pattern, packet.data).subscribe({
      next: (response) => callback({ response }),
      error: (err: unknown) => callback({ err }),
      complete: () => callback({ isDisposed: true }),
    });
    return () => subscription.unsubscribe();
  }

  /**
   * Delivers the event once to one RUNNING node of every service that handles it, waiting (up to
   * pickTimeout) until at least one does. At most once: a node that dies with the event unread loses it.
   */
  protected async dispatchEvent<T = any>(packet: ReadPacket, key?: number): Promise<T> {
    const pattern = this.normalizePattern(packet.pattern);
    const data = packet.data;
    const trace = telemetry.active?.outbound(
      'event',
      pattern,
      (packet as { metadata?: Record<string, unknown> }).metadata,
    );
    const metadata = trace?.metadata ?? (packet as { metadata?: Record<string, unknown> }).metadata;
    try {
      await this.deliver(pattern, data, metadata, trace, key);
      trace?.end();
    } catch (error) {
      trace?.end(error);
      throw error;
    }
    return undefined as T;
  }

  private async deliver(
    pattern: string,
    data: unknown,
    metadata: Record<string, unknown> | undefined,
    trace: OutboundTrace | undefined,
    key: number | undefined,
  ): Promise<void> {
    // Only nodes of another major protocol version may take it: no use waiting for them.
    const incompatible = this.router.incompatibleOnly(pattern, 'events');
    if (incompatible !== undefined) throw incompatible;
    const targets = await this.router.waitFor(
      () => {
        const found = this.router.eventTargets(pattern, key);
        return found.length > 0 ? found : undefined;
      },
      `event "${pattern}"`,
      this.settings.pickTimeout,
    );
    await Promise.all(targets.map((peer) => this.emitTo(peer, pattern, data, metadata, trace)));
  }

  private async emitTo(
    first: PeerRecord,
    pattern: string,
    data: unknown,
    metadata: Record<string, unknown> | undefined,
    trace: OutboundTrace | undefined,
  ): Promise<void> {
    let peer: PeerRecord | undefined = first;
    // Each replica is tried once: going back to one that just failed would spend a retry for nothing.
    // The set is made only on a failure: most events go out at the first try.
    let tried: Set<PeerRecord> | undefined;
    for (let attempt = 0; ; attempt++) {
      trace?.attempt(peer);
      try {
        await this.pool.get(peer, this.pool.isBulk(data)).sendEvent(pattern, data, metadata);
        return;
      } catch (error) {
        const retryable = (error as { retryable?: boolean }).retryable === true;
        if (!retryable || attempt >= this.settings.retries) throw error;
        (tried ??= new Set()).add(peer);
        peer = this.router.candidates(pattern, 'events').find((p) => p.id === first.id && !tried!.has(p));
        if (peer === undefined) throw error;
        trace?.retry(error);
      }
    }
  }

  /**
   * The hash of a message's affinity key: the call's own (a KableRecord's), else the packet metadata's
   * (KABLE_AFFINITY_METADATA, from a Nest 12 dispatch hook), else the `affinity` option's function for
   * the route; undefined when none gives one. Throws what the function throws, or KABLE_AFFINITY_KEY
   * for a key that is neither a string nor a finite number.
   */
  private affinityKey(
    callKey: unknown,
    packet: { data: unknown; metadata?: Record<string, unknown> },
    route: string,
  ): number | undefined {
    let key = callKey;
    // Where the key came from, named only in the error: 0 the call, 1 the metadata, 2 the option.
    let from = 0;
    if (key === undefined && packet.metadata !== undefined) {
      key = packet.metadata[KABLE_AFFINITY_METADATA];
      from = 1;
    }
    if (key === undefined) {
      const derive = this.affinity?.get(route);
      if (derive === undefined) return undefined;
      key = derive(packet.data);
      from = 2;
    }
    if (key === undefined || key === null) return undefined;
    if (typeof key === 'string' || (typeof key === 'number' && Number.isFinite(key))) return keyHash(key);
    const source = [
      'KableRecord option "affinityKey"',
      `packet metadata "${KABLE_AFFINITY_METADATA}"`,
      `the "affinity" function of "${route}"`,
    ][from];
    throw new KableError(
      'KABLE_AFFINITY_KEY',
      `The affinity key from ${source} must be a string or a finite number (or undefined for none); got ${typeof key === 'number' ? String(key) : typeof key}.`,
    );
  }

  /** The same route as Nest's, computed faster for the usual pattern shapes (once per request). */
  protected override normalizePattern(pattern: unknown): string {
    return fastPatternRoute(pattern) ?? super.normalizePattern(pattern as never);
  }

  /** Nest 12 runs the dispatch hook here (it may add packet metadata); Nest 11 has no such hook. */
  private packetOf(pattern: unknown, data: unknown): ReadPacket & { metadata?: Record<string, unknown> } {
    const self = this as unknown as { createPacket?: (p: unknown, d: unknown) => ReadPacket };
    if (typeof self.createPacket === 'function') return self.createPacket(pattern, data);
    return { pattern, data };
  }
}

/**
 * A KableRecord, from this copy of the package or another (branded): plain objects, arrays and binary
 * payloads (a Buffer or another view), the usual data, are told apart without walking their prototype
 * chain. For a Buffer the branded `instanceof` walked four prototypes per request: its largest own cost
 * on the caller's side of a 64 KiB upload (15 ms self time in 2 s of requests, about 1 µs each).
 */
function isRecord(data: unknown): data is KableRecord {
  if (typeof data !== 'object' || data === null) return false;
  const proto: unknown = Object.getPrototypeOf(data);
  if (proto === Object.prototype || proto === Array.prototype || proto === null) return false;
  if (ArrayBuffer.isView(data)) return false;
  return data instanceof KableRecord;
}

/**
 * Hands `subscriber` what Nest's own clients would: every value through serializeResponse and every
 * error through serializeError. A translation that throws fails the request (and cancels it on the server).
 */
function translated(
  subscriber: Observer<unknown>,
  serializeResponse: (value: unknown) => unknown,
  serializeError: (error: unknown) => unknown,
): Observer<unknown> {
  return {
    next: (value) => {
      let response: unknown;
      try {
        response = serializeResponse(value);
      } catch (error) {
        subscriber.error(error);
        return;
      }
      subscriber.next(response);
    },
    error: (error) => {
      let translatedError: unknown;
      try {
        translatedError = serializeError(error);
      } catch (thrown) {
        translatedError = thrown;
      }
      subscriber.error(translatedError);
    },
    complete: () => subscriber.complete(),
  };
}

function departure(reason: RemovalReason, nodeTimeout: number): string {
  switch (reason) {
    case 'timeout':
      return `was evicted by discovery (no advert for ${nodeTimeout} ms)`;
    case 'duplicate':
      return 'was displaced by another node with the same id';
    default:
      return 'left the cluster (DOWN)';
  }
}

/** Every client's counters on a node (several clients may share one), summed into node.stats() as `client.*`. */
const clientStats = new WeakMap<KableNode, Set<() => Record<string, number>>>();

function countClientStats(node: KableNode, stats: () => Record<string, number>): void {
  let all = clientStats.get(node);
  if (all === undefined) {
    const each = new Set<() => Record<string, number>>();
    all = each;
    clientStats.set(node, each);
    node.addStats('client', () => {
      const sum: Record<string, number> = {};
      for (const read of each)
        for (const [key, value] of Object.entries(read())) sum[key] = (sum[key] ?? 0) + value;
      return sum;
    });
  }
  all.add(stats);
}

function uncountClientStats(node: KableNode, stats: () => Record<string, number>): void {
  clientStats.get(node)?.delete(stats);
}
