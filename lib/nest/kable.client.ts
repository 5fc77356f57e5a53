import type { ReadPacket, WritePacket } from '@nestjs/microservices';
import { ClientProxy } from '@nestjs/microservices';
import { Observable, Subject, connectable, defer, mergeMap, throwError } from 'rxjs';
import { PeerPool } from '../data-plane/peer-pool.js';
import { kable } from '../kable.js';
import { KableError } from '../node/errors.js';
import type { KableNode, KableNodeEvents } from '../node/kable-node.js';
import type { PeerRecord } from '../node/peer-record.js';
import type { RemovalReason } from '../node/registry.js';
import { CLIENT_DEFAULTS, nodeOptionsOf, type KableClientOptions } from './kable.options.js';
import { OutboundRequest, type RequestSettings } from './outbound-request.js';
import { PatternCatalog } from './pattern-catalog.js';
import { channelFor } from './secure-data-plane.js';
import { fastPatternRoute } from './pattern-route.js';
import { PatternRouter } from './pattern-router.js';
import { validateClientOptions } from './validate-client-options.js';

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
  readonly node: KableNode;
  private readonly ownsNode: boolean;
  private readonly settings: RequestSettings;
  private readonly pool: PeerPool;
  private readonly catalog: PatternCatalog;
  private readonly router: PatternRouter;
  private connecting: Promise<void> | undefined;
  private joined = false;

  constructor(options: KableClientOptions = {}) {
    super();
    const resolved = validateClientOptions(options);
    this.settings = resolved;
    if (options.node !== undefined) {
      this.node = options.node;
      this.ownsNode = false;
    } else {
      const nodeOptions = nodeOptionsOf(options);
      this.node = kable(options.id ?? CLIENT_DEFAULTS.id, { replica: true, ...nodeOptions });
      this.ownsNode = true;
    }
    this.pool = new PeerPool({
      hello: { iid: this.node.iid, id: this.node.id },
      connect: channelFor(this.node, options.tls).connect,
      ...(options.maxFrameSize === undefined ? {} : { maxFrameSize: options.maxFrameSize }),
      liveness: resolved.liveness,
    });
    this.catalog = new PatternCatalog((peer) => this.pool.get(peer).describe(DESCRIBE_TIMEOUT));
    this.router = new PatternRouter(this.node, this.catalog, options.target, resolved.maxWaiters, (peer) =>
      this.pool.inFlight(peer.iid),
    );
    this.pool.on('liveness', (iid, responsive) => this.router.setResponsive(iid, responsive));
    this.node.on('peer:removed', this.onPeerRemoved);
    countClientStats(this.node, this.pool);
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
    // And any connection made to a peer already forgotten (a request routed just before it left).
    this.pool.retain((iid) => this.node.peer(iid) !== undefined, departed);
  };

  /** Joins the cluster (idempotent); requests made before it call it themselves. */
  connect(): Promise<void> {
    this.connecting ??= (async () => {
      await this.node.join(true);
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
    this.router.dispose();
    this.node.off('peer:removed', this.onPeerRemoved);
    this.pool.close();
    uncountClientStats(this.node, this.pool);
    if (this.ownsNode) await this.node.down();
    this._status$.next('disconnected' satisfies KableClientStatus);
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
      options.timeout ?? this.settings.pickTimeout,
    );
  }

  override send<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    if (pattern === undefined || pattern === null || data === undefined || data === null) {
      return throwError(() => invalidMessage(pattern));
    }
    const request$ = new Observable<TResult>((subscriber) => {
      const packet = this.packetOf(pattern, data);
      const request = new OutboundRequest(
        this.router,
        this.pool,
        this.settings,
        this.normalizePattern(pattern),
        packet.data,
        packet.metadata,
        subscriber as never,
      );
      request.start();
      return () => request.cancel();
    });
    // Once joined, skip the connect step: a deferred promise per request costs a few microtask turns.
    if (this.joined && this.node.state.state !== 'DOWN') return request$;
    return defer(() => this.connect()).pipe(mergeMap(() => request$));
  }

  override emit<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    if (pattern === undefined || pattern === null || data === undefined || data === null) {
      return throwError(() => invalidMessage(pattern));
    }
    // Hot, as Nest's own emit: the event goes out whether or not anyone subscribes.
    const source = defer(async () => {
      await this.connect();
      return this.dispatchEvent(this.packetOf(pattern, data));
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
  protected async dispatchEvent<T = any>(packet: ReadPacket): Promise<T> {
    const pattern = this.normalizePattern(packet.pattern);
    const data = packet.data;
    const metadata = (packet as { metadata?: Record<string, unknown> }).metadata;
    const targets = await this.router.waitFor(
      () => {
        const found = this.router.eventTargets(pattern);
        return found.length > 0 ? found : undefined;
      },
      `event "${pattern}"`,
      this.settings.pickTimeout,
    );
    await Promise.all(targets.map((peer) => this.emitTo(peer, pattern, data, metadata)));
    return undefined as T;
  }

  private async emitTo(
    first: PeerRecord,
    pattern: string,
    data: unknown,
    metadata: Record<string, unknown> | undefined,
  ): Promise<void> {
    let peer: PeerRecord | undefined = first;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.pool.get(peer).sendEvent(pattern, data, metadata);
        return;
      } catch (error) {
        const retryable = (error as { retryable?: boolean }).retryable === true;
        if (!retryable || attempt >= this.settings.retries) throw error;
        const others = this.router
          .candidates(pattern, 'events')
          .filter((p) => p.id === first.id && p !== peer);
        peer = others[0];
        if (peer === undefined) throw error;
      }
    }
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

/** Every client's connections on a node, summed into node.stats() as `client.*`. */
const clientPools = new WeakMap<KableNode, Set<PeerPool>>();

function countClientStats(node: KableNode, pool: PeerPool): void {
  let pools = clientPools.get(node);
  if (pools === undefined) {
    const all = new Set<PeerPool>();
    pools = all;
    clientPools.set(node, all);
    node.addStats('client', () => {
      const sum: Record<string, number> = {};
      for (const each of all)
        for (const [key, value] of Object.entries(each.stats())) sum[key] = (sum[key] ?? 0) + value;
      return sum;
    });
  }
  pools.add(pool);
}

function uncountClientStats(node: KableNode, pool: PeerPool): void {
  clientPools.get(node)?.delete(pool);
}

function invalidMessage(pattern: unknown): KableError {
  return new KableError(
    'KABLE_INVALID_MESSAGE',
    `The message pattern and data must not be null or undefined (pattern: ${JSON.stringify(pattern) ?? 'undefined'}).`,
  );
}
