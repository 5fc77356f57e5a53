import { EventEmitter } from 'node:events';
import { KableError } from '../node/errors.js';
import type { KableNode } from '../node/kable-node.js';
import type { PeerRecord } from '../node/peer-record.js';
import { LoadAwareRoundRobin } from '../node/load-aware-round-robin.js';
import type { ReplicaHealth } from '../node/replica-health.js';
import { Rendezvous, addressHash } from '../node/rendezvous.js';
import { RoundRobin, type BalancingStrategy } from '../node/round-robin.js';
import { noNodeError } from './no-node-error.js';
import type { PatternCatalog, PatternKind } from './pattern-catalog.js';

interface Route {
  nodeVersion: number;
  catalogVersion: number;
  avoidVersion: number;
  healthVersion: number;
  candidates: PeerRecord[];
  /** Latency outliers and ejected replicas: left out of `candidates`, sent a probe now and then. */
  probes: PeerRecord[];
  /** Every RUNNING node that serves the pattern: `candidates` and `probes`, in the cluster order. */
  serving: PeerRecord[];
  /** Some RUNNING node's catalog is still being fetched: it may serve the pattern too. */
  pending: boolean;
  /** RUNNING nodes of another major protocol version that may serve the pattern: never picked. */
  incompatible: PeerRecord[];
  /** Whose turn it is; kept when the candidates are recomputed, so churn does not reset the rotation. */
  balancer: BalancingStrategy<PeerRecord>;
  /** Chooses for requests with an affinity key; made at the first one. */
  affinity: Rendezvous<PeerRecord> | undefined;
}

const noLoad = (): number => 0;

interface Waiter {
  check(): void;
}

/**
 * Which RUNNING nodes serve a pattern, in the cluster-wide order, and whose turn it is. Views are cached
 * per pattern and recomputed only when the registry or the catalog changed, so the hot path of a
 * request is a map lookup and a cursor step.
 */
export class PatternRouter extends EventEmitter<{ changed: [] }> {
  private readonly messageRoutes = new Map<string, Route>();
  private readonly eventRoutes = new Map<string, Route>();
  private readonly balancers = new Map<string, RoundRobin<PeerRecord>>();
  private readonly waiters = new Set<Waiter>();
  /** Chooses each service's replica for events with an affinity key. */
  private eventAffinity: Rendezvous<PeerRecord> | undefined;
  /**
   * Nodes that just refused or could not be reached, skipped until they advertise again or the
   * `performance.now()` time kept here. Expiry is checked when routes are read, so an entry never outlives
   * its time whatever the timer does; the timer only wakes requests waiting for a node.
   */
  private readonly avoided = new Map<string, number>();
  /** Earliest expiry in `avoided` (Infinity when empty); may be earlier than it, never later. */
  private avoidedUntil = Infinity;
  /** One timer for every avoidance: set for the earliest expiry. */
  private avoidTimer: NodeJS.Timeout | undefined;
  private avoidTimerDue = Infinity;
  private avoidVersion = 0;
  private attached = false;
  /** Nodes that do not answer this caller's PINGs: skipped like a node that is not RUNNING. */
  private readonly unresponsive = new Set<string>();
  private readonly onPeerNews = (peer: PeerRecord): void => {
    // The earliest expiry may now be gone: the timer then finds nothing due and waits for the next one.
    if (this.avoided.delete(peer.iid)) this.avoidVersion++;
    this.onChange();
  };
  private readonly onChange = (): void => {
    for (const waiter of [...this.waiters]) waiter.check();
    this.emit('changed');
  };

  constructor(
    private readonly node: KableNode,
    private readonly catalog: PatternCatalog,
    private readonly target: string | undefined,
    private readonly maxWaiters: number,
    /** This caller's requests in flight to a node: the balancer passes over one far above the others. */
    private readonly load?: (peer: PeerRecord) => number,
    /** This caller's view of each replica's latency and failures: outliers get only probes. */
    readonly health?: ReplicaHealth,
    /** Chooses among a route's candidates instead of round robin (balance: 'least-latency'). */
    private readonly strategy?: () => BalancingStrategy<PeerRecord>,
  ) {
    super();
    this.attach();
  }

  /** Follows the cluster's changes (again, after dispose()). */
  attach(): void {
    if (this.attached) return;
    this.attached = true;
    this.node.on('peer:added', this.onChange);
    this.node.on('peer:removed', this.onPeerNews);
    this.node.on('peer:state', this.onPeerNews);
    this.node.on('peer:updated', this.onPeerNews);
    this.catalog.on('changed', this.onChange);
    this.armAvoidTimer();
  }

  dispose(): void {
    this.attached = false;
    this.node.off('peer:added', this.onChange);
    this.node.off('peer:removed', this.onPeerNews);
    this.node.off('peer:state', this.onPeerNews);
    this.node.off('peer:updated', this.onPeerNews);
    this.catalog.off('changed', this.onChange);
    clearTimeout(this.avoidTimer);
    this.avoidTimer = undefined;
    this.avoidTimerDue = Infinity;
    for (const waiter of [...this.waiters]) waiter.check();
  }

  /**
   * Skips a node that refused a request or could not be reached, until its state or address changes, it
   * is removed, or `forMs` passes: its advert saying so may still be on the way.
   */
  avoid(iid: string, forMs: number): void {
    if (this.avoided.size >= 10_000) this.avoided.clear();
    const until = performance.now() + forMs;
    this.avoided.set(iid, until);
    this.avoidVersion++;
    if (until < this.avoidedUntil) this.avoidedUntil = until;
    this.armAvoidTimer();
  }

  /** Instance ids of the nodes skipped now because they refused or could not be reached. */
  avoidedNodes(): string[] {
    this.expireAvoided();
    return [...this.avoided.keys()];
  }

  /** Drops the avoidances whose time has come (compared on read, so a timer firing early loses nothing). */
  private expireAvoided(): void {
    const now = performance.now();
    if (now < this.avoidedUntil) return;
    let earliest = Infinity;
    let expired = false;
    for (const [iid, until] of this.avoided) {
      if (until > now) earliest = Math.min(earliest, until);
      else expired = this.avoided.delete(iid);
    }
    this.avoidedUntil = earliest;
    if (expired) this.avoidVersion++;
  }

  /** Sets the one timer for the earliest expiry, if none is set for it or sooner. */
  private armAvoidTimer(): void {
    if (!this.attached || this.avoidedUntil >= this.avoidTimerDue) return;
    clearTimeout(this.avoidTimer);
    const due = this.avoidedUntil;
    this.avoidTimerDue = due;
    // Node's timers may fire up to a millisecond early: the callback then finds nothing due and sets
    // the timer again for what is left (at least 1 ms), rather than leaving the entry behind.
    this.avoidTimer = setTimeout(this.onAvoidTimer, Math.max(1, Math.ceil(due - performance.now())));
    this.avoidTimer.unref();
  }

  private readonly onAvoidTimer = (): void => {
    this.avoidTimer = undefined;
    this.avoidTimerDue = Infinity;
    const version = this.avoidVersion;
    this.expireAvoided();
    this.armAvoidTimer();
    // Routes are recomputed on their next read; requests waiting for a node look again now.
    if (this.avoidVersion !== version) this.onChange();
  };

  /** Skips a node while it does not answer (false), until it does again (true). */
  setResponsive(iid: string, responsive: boolean): void {
    if (responsive ? !this.unresponsive.delete(iid) : this.unresponsive.has(iid)) return;
    if (!responsive) this.unresponsive.add(iid);
    this.avoidVersion++;
    this.onChange();
  }

  /** Instance ids of the nodes skipped because they do not answer. */
  unresponsiveNodes(): string[] {
    return [...this.unresponsive];
  }

  /**
   * RUNNING nodes that handle the pattern, in the node core's order, latency outliers and ejected ones
   * included (they still serve it, and get probes).
   */
  candidates(pattern: string, kind: PatternKind): PeerRecord[] {
    return this.route(pattern, kind).serving;
  }

  /**
   * The next node for a request: with an affinity key (its `keyHash`), the key's replica among the
   * candidates within the load limit, `keyInFlight` being this caller's requests of the key already in
   * flight (see `loadLimit` in rendezvous.ts); else round robin. Undefined when none serves it right now,
   * or, with `spill` false, when the key's replica is over its limit (see `Rendezvous.select`).
   */
  next(pattern: string, key?: number, keyInFlight = 0, spill = true): PeerRecord | undefined {
    const route = this.route(pattern, 'messages');
    if (route.probes.length > 0) {
      const probe = this.probe(route.probes);
      if (probe !== undefined) return probe;
    }
    if (route.candidates.length === 0) return undefined;
    if (key !== undefined) return this.affinityOf(route).select(route.candidates, key, keyInFlight, spill);
    return route.balancer.select(route.candidates);
  }

  /** A key's first choice among the pattern's candidates, whatever the loads (see `next`). */
  home(pattern: string, key: number): PeerRecord | undefined {
    const route = this.route(pattern, 'messages');
    return this.affinityOf(route).first(route.candidates, key);
  }

  /** The route's keyed chooser, made at its first keyed request. */
  private affinityOf(route: Route): Rendezvous<PeerRecord> {
    return (route.affinity ??= new Rendezvous<PeerRecord>(addressHash, this.load ?? noLoad));
  }

  /** An excluded replica whose probe is due, if any (its next one is then an interval away). */
  private probe(probes: PeerRecord[]): PeerRecord | undefined {
    for (const peer of probes) {
      const replica = this.health?.peek(peer.iid);
      if (replica !== undefined && this.health!.probe(replica)) return peer;
    }
    return undefined;
  }

  /**
   * One node of each service id that handles the event: with an affinity key (its `keyHash`), the key's
   * replica of each service; else each service's own round robin.
   */
  eventTargets(pattern: string, key?: number): PeerRecord[] {
    const byService = new Map<string, PeerRecord[]>();
    for (const peer of this.route(pattern, 'events').candidates) {
      const list = byService.get(peer.id);
      if (list === undefined) byService.set(peer.id, [peer]);
      else list.push(peer);
    }
    const targets: PeerRecord[] = [];
    for (const [id, peers] of byService) {
      const chosen =
        key === undefined
          ? this.balancer(`e:${id}:${pattern}`).select(peers)
          : (this.eventAffinity ??= new Rendezvous<PeerRecord>(addressHash, this.load ?? noLoad)).select(
              peers,
              key,
            );
      if (chosen !== undefined) targets.push(chosen);
    }
    return targets;
  }

  /**
   * With a target service whose RUNNING nodes all have known catalogs and none handles the pattern,
   * one of them: the request goes there and its server answers with Nest's "no matching handler" error,
   * exactly as Nest's own transports do.
   */
  targetWithoutHandler(pattern: string): PeerRecord | undefined {
    if (this.target === undefined) return undefined;
    const route = this.route(pattern, 'messages');
    if (route.candidates.length > 0 || route.pending) return undefined;
    // route() above expired the avoidances due: what is left in `avoided` is skipped now.
    const nodes = this.node
      .running(this.target)
      .filter(
        (peer) =>
          peer.patterns !== '' &&
          peer.compatible &&
          !this.unresponsive.has(peer.iid) &&
          !this.avoided.has(peer.iid),
      );
    return nodes.length === 0 ? undefined : route.balancer.select(nodes);
  }

  /**
   * Resolves when `ready()` returns something, checked at once and on every cluster change; rejects with
   * KABLE_NO_NODE after `timeout` ms, with the signal's reason when aborted.
   */
  waitFor<T>(
    ready: () => T | undefined,
    what: string,
    timeout: number,
    signal?: AbortSignal,
    option: 'pickTimeout' | 'timeout' = 'pickTimeout',
  ): Promise<T> {
    const found = ready();
    if (found !== undefined) return Promise.resolve(found);
    if (this.waiters.size >= this.maxWaiters) {
      return Promise.reject(
        new KableError(
          'KABLE_TOO_MANY_WAITERS',
          `${this.maxWaiters} requests are already waiting for a node; refusing ${what} (raise maxPickWaiters).`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
      };
      const waiter: Waiter = {
        check: () => {
          const value = ready();
          if (value === undefined) return;
          finish();
          resolve(value);
        },
      };
      const onAbort = (): void => {
        finish();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        finish();
        reject(this.unserved(what, timeout, option));
      }, timeout);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  /** KABLE_NO_NODE for a wait for `what` that ended after `waited` ms, naming the services known. */
  unserved(
    what: string,
    waited: number,
    option: 'pickTimeout' | 'timeout',
    incompatible: readonly PeerRecord[] = [],
  ): KableError {
    const nodes = this.target === undefined ? this.node.runningNodes() : this.node.running(this.target);
    const unlisted = nodes.filter(
      (peer) => !peer.self && peer.compatible && !this.catalog.isKnown(peer.patterns),
    ).length;
    return noNodeError(this.node, what, waited, option, this.target, unlisted, incompatible);
  }

  /**
   * KABLE_NO_NODE, at once, when the only RUNNING nodes that may serve the pattern speak another major
   * protocol version: waiting would not help until a node of this caller's version comes. Else undefined.
   */
  incompatibleOnly(pattern: string, kind: PatternKind): KableError | undefined {
    const route = this.route(pattern, kind);
    if (route.candidates.length > 0 || route.pending || route.incompatible.length === 0) return undefined;
    const what = kind === 'messages' ? `pattern "${pattern}"` : `event "${pattern}"`;
    return this.unserved(what, 0, 'pickTimeout', route.incompatible);
  }

  get waiting(): number {
    return this.waiters.size;
  }

  private route(pattern: string, kind: PatternKind): Route {
    if (this.avoided.size > 0) this.expireAvoided();
    const routes = kind === 'messages' ? this.messageRoutes : this.eventRoutes;
    let route = routes.get(pattern);
    if (
      route !== undefined &&
      route.nodeVersion === this.node.version &&
      route.catalogVersion === this.catalog.version &&
      route.avoidVersion === this.avoidVersion &&
      route.healthVersion === (this.health?.version ?? 0)
    ) {
      return route;
    }
    if (route === undefined) {
      // Patterns are caller-chosen strings: bound the cache so a client sending random patterns stays small.
      if (routes.size >= 10_000) routes.clear();
      route = {
        nodeVersion: -1,
        catalogVersion: -1,
        avoidVersion: -1,
        healthVersion: -1,
        candidates: [],
        probes: [],
        serving: [],
        pending: false,
        incompatible: [],
        balancer:
          kind === 'messages' && this.strategy !== undefined
            ? this.strategy()
            : kind === 'messages' && this.load !== undefined
              ? new LoadAwareRoundRobin<PeerRecord>(this.load)
              : new RoundRobin<PeerRecord>(),
        affinity: undefined,
      };
      routes.set(pattern, route);
    }
    const nodes = this.target === undefined ? this.node.runningNodes() : this.node.running(this.target);
    const serving: PeerRecord[] = [];
    let candidates: PeerRecord[] = serving;
    let probes: PeerRecord[] = [];
    let pending = false;
    let incompatible: PeerRecord[] | undefined;
    for (const peer of nodes) {
      if (!peer.compatible) {
        // Never asked for its pattern list either: it could not answer this caller's DESCRIBE.
        if (this.mayServe(peer, pattern, kind)) (incompatible ??= []).push(peer);
        continue;
      }
      if (this.avoided.size > 0 && this.avoided.has(peer.iid)) continue;
      if (this.unresponsive.size > 0 && this.unresponsive.has(peer.iid)) continue;
      const handles = this.catalog.handles(peer, pattern, kind);
      if (handles === true) {
        if (kind === 'messages' && this.health?.peek(peer.iid)?.excluded === true) {
          // The first excluded one: from here on the rotation is a list of its own.
          if (candidates === serving) candidates = serving.slice();
          probes.push(peer);
        } else if (candidates !== serving) candidates.push(peer);
        serving.push(peer);
      } else if (handles === undefined) pending = true;
    }
    // Only outliers left: the least bad is better than nothing, so they are served in turn.
    if (candidates.length === 0) [candidates, probes] = [probes, candidates];
    route.nodeVersion = this.node.version;
    route.catalogVersion = this.catalog.version;
    route.avoidVersion = this.avoidVersion;
    route.healthVersion = this.health?.version ?? 0;
    route.candidates = candidates;
    route.probes = probes;
    route.serving = serving;
    route.pending = pending;
    route.incompatible = incompatible ?? [];
    return route;
  }

  /** An incompatible node that may serve the pattern: any of the target service, else by its known list. */
  private mayServe(peer: PeerRecord, pattern: string, kind: PatternKind): boolean {
    if (this.target !== undefined || !this.catalog.isKnown(peer.patterns)) return true;
    return this.catalog.handles(peer, pattern, kind) === true;
  }

  private balancer(key: string): RoundRobin<PeerRecord> {
    let balancer = this.balancers.get(key);
    if (balancer === undefined) {
      if (this.balancers.size >= 10_000) this.balancers.clear();
      balancer = new RoundRobin<PeerRecord>();
      this.balancers.set(key, balancer);
    }
    return balancer;
  }
}
