import { randomInt, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Advert, AdvertEvent, AdvertSource } from './advert.js';
import { defaultHost } from './default-host.js';
import type { DiscoveryTransport } from './discovery-transport.js';
import { KableError, KableOptionsError, type KableWarning } from './errors.js';
import type { KableOptions } from './options.js';
import type { PeerRecord } from './peer-record.js';
import { parseKeys } from './keys.js';
import { unwatchSignals, watchSignals } from './leave-on-signal.js';
import { OverloadMonitor } from './overload-monitor.js';
import { OwnStalls } from './own-stalls.js';
import { PickWaiters } from './pick-waiters.js';
import { formatVersion, PROTOCOL_VERSION } from './protocol-version.js';
import {
  EVERYONE,
  JOIN_RETRIES_MS,
  JoinAnswers,
  asksEveryone,
  joinWindow,
  type AnswerTarget,
} from './join-answers.js';
import { Registry, type RegistryChange, type RemovalReason } from './registry.js';
import { RoundRobin } from './round-robin.js';
import { MAX_PROBED, SilenceProbe } from './silence-probe.js';
import { StateMachine, type NodeStatus } from './state-machine.js';
import { MAX_REASON_BYTES, boundReason } from './state-reason.js';
import type { NodeState } from './states.js';
import { UpdateThrottle } from './update-throttle.js';
import { WarningLimiter } from './warning-limiter.js';
import {
  milliseconds,
  validateId,
  validateNodeOptions,
  type ResolvedNodeOptions,
} from './validate-options.js';
import { brand } from './brand.js';

/** Events of a node: `node.on(name, listener)`; listeners get the arguments listed. */
export interface KableNodeEvents {
  /** A node was heard from for the first time (or again after it was removed). */
  'peer:added': [peer: PeerRecord];
  /** A peer's state changed. */
  'peer:state': [peer: PeerRecord, previous: NodeState];
  /** A peer left the registry, and why. */
  'peer:removed': [peer: PeerRecord, reason: RemovalReason];
  /** A peer's address or pattern digest changed without a state change. */
  'peer:updated': [peer: PeerRecord];
  /** This node's own state changed. */
  state: [status: NodeStatus, previous: NodeStatus];
  /** A cluster-level problem, such as DUPLICATE_NODE_ID; listener errors are caught. */
  error: [error: KableError];
  /** Something was dropped or refused (rate-limited per code). */
  warning: [warning: KableWarning];
}

/** Options of `node.pick(id, options)`. */
export interface PickOptions {
  /** Aborts the wait; the promise rejects with the signal's reason (an AbortError by default). */
  signal?: AbortSignal;
  /** Milliseconds to wait for a RUNNING node (default: the node's pickTimeout, five minutes). */
  timeout?: number;
}

/** Unregister goes out this many times, this far apart (ms), because UDP may lose any one of them. */
const UNREGISTER_REPEATS = [0, 10, 30];
const SELF_SOURCE: AdvertSource = Object.freeze({ address: 'self', port: 0 });
/** Most distinct duplicate instance ids remembered as already reported. */
const MAX_REPORTED_DUPLICATES = 1024;

/**
 * One service instance's view of its cluster: its own state machine, the registry of every other
 * node, and the balancer over RUNNING replicas. Framework-free; adverts travel through a
 * DiscoveryTransport.
 */
export class KableNode extends EventEmitter<KableNodeEvents> {
  static {
    brand(this, 'KableNode');
  }

  /** Service id; replicas share it. */
  readonly id: string;
  /** Unique instance id of this node, new at every construction. */
  readonly iid = randomUUID();
  /** Whether other nodes may share `id`. */
  readonly replica: boolean;
  /** This machine's host name, advertised for people reading tables. */
  readonly hostname = hostname();
  /** This process id, advertised for people reading tables. */
  readonly pid = process.pid;
  /** Random safe integer (< 2^48); with iid, orders nodes the same way on every peer. */
  readonly index = randomInt(0, 2 ** 48 - 1);
  /** Nodes only see nodes of their own namespace. */
  readonly namespace: string;
  /** Free-form data carried in every advert. */
  readonly meta: Record<string, unknown> | undefined;

  private currentHost: string;
  private currentPort: number;
  private patternDigest = '';
  private startedAtMs = 0;
  private seq = 0;
  private readonly options: ResolvedNodeOptions;
  private readonly machine = new StateMachine('DOWN');
  private readonly registry = new Registry();
  private readonly balancers = new Map<string, RoundRobin<PeerRecord>>();
  private readonly waiters: PickWaiters<PeerRecord>;
  private readonly throttle: UpdateThrottle;
  private readonly reportedDuplicates = new Set<string>();
  private joining: Promise<void> | undefined;
  /** The last of up() and down() called was up(): join() has nothing to do. */
  private wantsUp = false;
  private lifecycleCalls = 0;
  /** Settles when the last up() or down() called is done; `lifecycleSteps` of them are under way. */
  private lifecycle: Promise<void> = Promise.resolve();
  private lifecycleSteps = 0;
  private discoveryUnreachable = false;
  private readonly statsSources = new Map<string, () => Record<string, number>>();
  /** The cluster keys, primary first: the data plane derives its own key from them. */
  readonly #keys: Buffer[];
  private readonly overload: OverloadMonitor | undefined;
  /** How often silent peers are looked for: a sixth of the advert interval, at most a tenth of nodeTimeout. */
  private readonly sweepEvery: number;
  private readonly probe: SilenceProbe;
  private readonly joins: JoinAnswers;
  /** This node's own event-loop stalls: not counted as its peers' silence. */
  private readonly stalls: OwnStalls;
  private advertTimer: NodeJS.Timeout | undefined;
  /** Repeats of the join request while nobody has answered (see JOIN_RETRIES_MS). */
  private joinRetryTimers: NodeJS.Timeout[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly counters = {
    advertsSent: 0,
    advertsReceived: 0,
    staleAdverts: 0,
    ownAdverts: 0,
    evictions: 0,
    joinRetries: 0,
    duplicatesSeen: 0,
    listenerErrors: 0,
    unhandledErrors: 0,
    /** Advert fields past the ones this version knows (from a later minor version): ignored. */
    unknownAdvertFields: 0,
  };
  /** One warning a second at most, however many nodes of another major version advertise. */
  private readonly incompatibleWarnings = new WarningLimiter((warning) =>
    this.emitSafely('warning', warning),
  );

  constructor(
    id: string,
    options: KableOptions,
    private readonly transport: DiscoveryTransport,
  ) {
    super();
    this.id = validateId(id);
    this.options = validateNodeOptions(options);
    this.replica = this.options.replica;
    this.namespace = this.options.namespace;
    this.meta = this.options.meta;
    this.currentHost = this.options.host ?? defaultHost();
    this.currentPort = this.options.port;
    this.waiters = new PickWaiters(this.options.maxPickWaiters);
    this.throttle = new UpdateThrottle(this.options.maxUpdatesPerSecond, () => this.send('update'));
    this.#keys = parseKeys(options.key, options.keys);
    this.overload =
      this.options.busy === undefined ? undefined : new OverloadMonitor(this, this.options.busy);
    this.sweepEvery = Math.max(
      5,
      Math.min(Math.floor(this.options.advertiseInterval / 6), Math.floor(this.options.nodeTimeout / 10)),
    );
    this.probe = new SilenceProbe(Math.round(this.options.advertiseInterval * 1.25), this.sweepEvery);
    this.stalls = new OwnStalls(this.sweepEvery, this.options.nodeTimeout);
    // Join answers share the probe answers' pace: at most one per half sweep (250 ms by default).
    this.joins = new JoinAnswers(
      this.sweepEvery / 2,
      () => joinWindow(this.registry.size, this.options.advertiseInterval),
      (to) => this.answerJoin(to),
    );
  }

  /** Data-plane address advertised to peers. */
  get host(): string {
    return this.currentHost;
  }

  /** Data-plane port advertised to peers (0 until a server listens). */
  get port(): number {
    return this.currentPort;
  }

  /** Milliseconds since the epoch when the node last came UP. */
  get startedAt(): number {
    return this.startedAtMs;
  }

  /** This node's state, reason and since when. */
  get state(): NodeStatus {
    return this.machine.current;
  }

  /** Milliseconds between periodic adverts, as resolved from the options. */
  get advertiseInterval(): number {
    return this.options.advertiseInterval;
  }

  /** Milliseconds of silence after which a peer is removed, as resolved from the options. */
  get nodeTimeout(): number {
    return this.options.nodeTimeout;
  }

  /** Registry version: changes whenever any rotation changes, so callers can cache derived views. */
  get version(): number {
    return this.registry.version;
  }

  /**
   * Brings a shared node up once, however many parts of an app use it (a hybrid app's server and
   * clients): the first call runs `up(running)`, later ones wait for that or return at once.
   */
  join(running = true): Promise<void> {
    if (this.wantsUp) return this.joining ?? Promise.resolve();
    return this.up(running);
  }

  /**
   * Joins the cluster: binds discovery, announces itself, and (by default) goes RUNNING. Called while a
   * down() is still leaving, it starts once that is done: up() and down() run one at a time, in call
   * order, so the last call wins.
   */
  up(running = true): Promise<void> {
    this.wantsUp = true;
    const call = ++this.lifecycleCalls;
    const joining = this.oneAtATime(() => this.bringUp(running, call));
    this.joining = joining;
    const forget = () => {
      if (this.joining === joining) this.joining = undefined;
    };
    joining.then(forget, forget);
    return joining;
  }

  private async bringUp(running: boolean, call: number): Promise<void> {
    this.machine.to('UP');
    this.startedAtMs = Date.now();
    try {
      // With room for the longest probe list and the longest reason, so that no later advert can be
      // refused for its size.
      const probe = new Array<number>(MAX_PROBED).fill(Number.MAX_SAFE_INTEGER);
      const reason = 'x'.repeat(MAX_REASON_BYTES);
      this.transport.validate?.({ ...this.buildAdvert('advertisement', 0), probe, reason });
      await this.transport.start({
        advert: (advert, source) => this.receive(advert, source),
        warning: (warning) => this.emit('warning', warning),
        connectivity: (reachable) => this.onConnectivity(reachable),
      });
    } catch (error) {
      this.machine.to('DOWN');
      // Failed to join: unless up() or down() was called since, a later join() tries again.
      if (call === this.lifecycleCalls) this.wantsUp = false;
      throw error;
    }
    const before = this.machine.current;
    if (running) this.machine.to('RUNNING');
    // The first advert asks who is there, unless the transport already handed over the cluster (Redis).
    if (this.transport.knowsCluster === true) this.send('advertisement');
    else this.askEveryone();
    this.advertTimer = setInterval(() => this.send('advertisement'), this.options.advertiseInterval);
    this.advertTimer.unref();
    this.stalls.start();
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepEvery);
    this.sweepTimer.unref();
    this.overload?.start();
    watchSignals(this);
    if (running) this.emitSafely('state', this.machine.current, before);
  }

  /** Sends the join request, and again (JOIN_RETRIES_MS) for as long as no peer has answered. */
  private askEveryone(): void {
    this.send('advertisement', [EVERYONE]);
    this.joinRetryTimers = JOIN_RETRIES_MS.filter((delay) => delay < this.options.advertiseInterval).map(
      (delay) => {
        const timer = setTimeout(() => {
          if (this.machine.current.state === 'DOWN' || this.peers().length > 0) return;
          this.counters.joinRetries++;
          this.send('advertisement', [EVERYONE]);
        }, delay);
        timer.unref();
        return timer;
      },
    );
  }

  /** Goes RUNNING: back in every rotation. Throws KableStateError from a state that cannot. */
  start(reason?: string): void {
    this.change('RUNNING', reason);
  }

  /** Goes STOPPED: out of every rotation until start(), still a member of the cluster. */
  stop(reason?: string): void {
    this.change('STOPPED', reason);
  }

  /** Goes DOING_SOMETHING: busy, skipped by every balancer until start(). */
  doing(reason?: string): void {
    this.change('DOING_SOMETHING', reason);
  }

  /**
   * Leaves the cluster: announces it (several times), unbinds, forgets peers. Does nothing when DOWN.
   * Called while an up() is still joining, it leaves once that is done (the last call wins).
   */
  down(reason?: string): Promise<void> {
    this.wantsUp = false;
    this.lifecycleCalls++;
    return this.oneAtATime(() => this.takeDown(reason));
  }

  /** Runs lifecycle steps one after the other: a step never sees another half done. */
  private oneAtATime(step: () => Promise<void>): Promise<void> {
    // Nothing under way: start now, so that down() is DOWN by the time it returns, as it always was.
    const run = this.lifecycleSteps === 0 ? step() : this.lifecycle.then(step);
    this.lifecycleSteps++;
    const done = () => {
      this.lifecycleSteps--;
    };
    // Registered before the caller's own reactions: by the time `await up()` returns, the step is done.
    this.lifecycle = run.then(done, done);
    return run;
  }

  private async takeDown(reason?: string): Promise<void> {
    if (this.machine.current.state === 'DOWN') return;
    const previous = this.machine.to('DOWN', boundReason(reason));
    this.throttle.cancel();
    this.joins.cancel();
    this.overload?.stop();
    unwatchSignals(this);
    clearInterval(this.advertTimer);
    clearInterval(this.sweepTimer);
    for (const timer of this.joinRetryTimers.splice(0)) clearTimeout(timer);
    for (const delay of UNREGISTER_REPEATS) {
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      const advert = this.buildAdvert('unregister');
      this.counters.advertsSent++;
      if (this.transport.flush !== undefined) await this.transport.flush(advert).catch(() => undefined);
      else this.transport.send(advert);
    }
    await this.transport.stop();
    this.registry.clear();
    this.balancers.clear();
    this.waiters.rejectAll(
      new KableError('KABLE_NODE_DOWN', `Node "${this.id}" went down while pick() was waiting.`),
    );
    this.emitSafely('state', this.machine.current, previous);
  }

  /** Where this node's data plane listens; announced at once when the node is up. */
  setAddress(host: string, port: number): void {
    if (typeof host !== 'string' || host === '')
      throw new KableOptionsError('The data-plane host must be a non-empty string.');
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new KableOptionsError(`Bad data-plane port ${port}.`);
    this.currentHost = host;
    this.currentPort = port;
    this.announceChange();
  }

  /** A digest of the patterns this node serves (set by the transport layer); peers refetch on change. */
  setPatterns(digest: string): void {
    if (digest === this.patternDigest) return;
    this.patternDigest = digest;
    this.announceChange();
  }

  /** Digest of the patterns this node serves, as advertised. */
  get patterns(): string {
    return this.patternDigest;
  }

  /** The next RUNNING node of `id`, round robin in cluster order; waits when none is known yet. */
  pick(id: string, options: PickOptions = {}): Promise<PeerRecord> {
    const found = this.pickNow(id);
    if (found !== undefined) return Promise.resolve(found);
    let timeout: number;
    try {
      timeout = milliseconds('timeout', options.timeout ?? this.options.pickTimeout, 'pick() option ');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.waiters.wait(id, timeout, options.signal);
  }

  /** The next RUNNING node of `id`, or undefined at once: the hot path for clients. */
  pickNow(id: string): PeerRecord | undefined {
    const list = this.registry.running(id);
    if (list.length === 0) return undefined;
    let balancer = this.balancers.get(id);
    if (balancer === undefined) {
      balancer = new RoundRobin();
      this.balancers.set(id, balancer);
    }
    return balancer.select(list);
  }

  /** RUNNING nodes of `id` in cluster order (this node included when it qualifies). */
  running(id: string): readonly PeerRecord[] {
    return this.registry.running(id);
  }

  /** Every RUNNING node of every service (this one included when RUNNING). */
  runningNodes(): PeerRecord[] {
    return this.registry.allRunning();
  }

  /** Every other node this one knows, in any state. */
  peers(): PeerRecord[] {
    return this.registry.all().filter((peer) => !peer.self);
  }

  /** The node with this instance id, if this node knows it. */
  peer(iid: string): PeerRecord | undefined {
    return this.registry.get(iid);
  }

  /** @internal The cluster keys (for the data plane's TLS); empty without a key. */
  clusterKeys(): Buffer[] {
    return this.#keys;
  }

  /** Adds counters of another part (the data plane) to stats(); prefixed with `name.`. */
  addStats(name: string, source: () => Record<string, number>): void {
    this.statsSources.set(name, source);
  }

  /** This node's counters: discovery, dropped datagrams by kind, and its servers' and clients' (prefixed). */
  stats(): Record<string, number> {
    const extra: Record<string, number> = {};
    for (const [name, source] of this.statsSources) {
      for (const [key, value] of Object.entries(source())) extra[`${name}.${key}`] = value;
    }
    return {
      ...extra,
      ...this.counters,
      probesSent: this.probe.probesSent,
      probesAnswered: this.probe.probesAnswered,
      joinRequests: this.joins.requests,
      joinAnswers: this.joins.answers,
      joinRequestsCoalesced: this.joins.coalesced,
      joinAnswersOverBudget: this.joins.overBudget,
      joinAnswersFailed: this.joins.failed,
      ownStalls: this.stalls.count,
      peers: this.registry.size,
      incompatiblePeers: this.registry.all().filter((peer) => !peer.compatible).length,
      ignoredDuplicates: this.registry.ignoredCount(),
      pickWaiters: this.waiters.size,
      overloads: this.overload?.overloads ?? 0,
      ...this.transport.stats(),
    };
  }

  private change(to: NodeState, reason?: string): void {
    const previous = this.machine.to(to, boundReason(reason));
    this.refreshSelf();
    this.throttle.request();
    this.emitSafely('state', this.machine.current, previous);
  }

  private announceChange(): void {
    const state = this.machine.current.state;
    if (state === 'DOWN') return;
    this.refreshSelf();
    this.throttle.request();
  }

  private buildAdvert(event: AdvertEvent, seq = ++this.seq): Advert {
    const status = this.machine.current;
    const advert: Advert = {
      event,
      id: this.id,
      iid: this.iid,
      replica: this.replica,
      host: this.currentHost,
      port: this.currentPort,
      hostname: this.hostname,
      pid: this.pid,
      index: this.index,
      startedAt: this.startedAtMs,
      state: status.state,
      since: status.since,
      seq,
      patterns: this.patternDigest,
      protocol: PROTOCOL_VERSION,
    };
    if (status.reason !== undefined) advert.reason = status.reason;
    if (this.meta !== undefined) advert.meta = this.meta;
    return advert;
  }

  private send(event: AdvertEvent, probe?: number[]): void {
    if (this.machine.current.state === 'DOWN') return;
    const advert = this.buildAdvert(event);
    if (probe !== undefined) advert.probe = probe;
    this.counters.advertsSent++;
    this.applySelf(advert);
    this.transport.send(advert);
    this.joins.sentToAll(Date.now());
  }

  /** Answers a join: to the asker alone where the transport can (unicast), else to everyone. */
  private answerJoin(to: AnswerTarget): void {
    if (to === undefined || this.transport.sendTo === undefined) return this.send('advertisement');
    if (this.machine.current.state === 'DOWN') return;
    this.counters.advertsSent++;
    this.transport.sendTo(this.buildAdvert('advertisement'), to);
  }

  /** Keeps this node's own record (and so its place in its own rotation) in step with its state. */
  private refreshSelf(): void {
    this.applySelf(this.buildAdvert('update'));
  }

  private applySelf(advert: Advert): void {
    this.handle(this.registry.apply(advert, SELF_SOURCE, Date.now(), true), advert.id);
  }

  private receive(advert: Advert, source: AdvertSource): void {
    if (advert.iid === this.iid) {
      this.counters.ownAdverts++;
      return;
    }
    if (this.machine.current.state === 'DOWN') return;
    this.counters.advertsReceived++;
    if (advert.unknownFields !== undefined) this.counters.unknownAdvertFields += advert.unknownFields;
    const now = Date.now();
    try {
      this.handle(this.registry.apply(advert, source, now), advert.id);
      if (asksEveryone(advert.probe))
        this.joins.request(this.transport.sendTo === undefined ? undefined : source, now);
      else if (this.probe.shouldAnswer(advert.probe, this.index, now)) this.send('advertisement');
    } catch (error) {
      // A user's listener threw: never let it unwind into the socket handler.
      this.counters.listenerErrors++;
      this.emit('warning', {
        code: 'KABLE_LISTENER_ERROR',
        message: `A node event listener threw: ${String(error)}`,
      });
    }
  }

  private handle(change: RegistryChange, id: string): void {
    switch (change.kind) {
      case 'added':
        if (!change.peer.compatible) this.warnIncompatible(change.peer);
        if (!change.peer.self) this.emit('peer:added', change.peer);
        if (change.peer.state === 'RUNNING') this.serveWaiters(id);
        return;
      case 'state':
        if (!change.peer.self) this.emit('peer:state', change.peer, change.previous);
        if (change.peer.state === 'RUNNING') this.serveWaiters(id);
        return;
      case 'removed':
        if (!change.peer.self) this.emit('peer:removed', change.peer, change.reason);
        return;
      case 'duplicate':
        this.onDuplicate(change);
        return;
      case 'refreshed':
        if (change.changed && !change.peer.self) this.emit('peer:updated', change.peer);
        return;
      case 'stale':
        this.counters.staleAdverts++;
        return;
      default:
        return;
    }
  }

  private warnIncompatible(peer: PeerRecord): void {
    const theirs = formatVersion(peer.protocol);
    this.incompatibleWarnings.count(
      'KABLE_INCOMPATIBLE_PEER',
      `Node ${peer.id} (${peer.iid}) at ${peer.host}:${peer.port} speaks data-plane protocol ${theirs}, ` +
        `this node ${formatVersion(PROTOCOL_VERSION)}: it is listed as incompatible ${theirs} and never ` +
        `sent requests (only the same major version interoperates).`,
    );
  }

  private onDuplicate(change: Extract<RegistryChange, { kind: 'duplicate' }>): void {
    this.counters.duplicatesSeen++;
    if (change.displaced !== undefined && !change.displaced.self)
      this.emit('peer:removed', change.displaced, 'duplicate');
    if (change.displaced !== undefined && !change.kept.self) this.emit('peer:added', change.kept);
    if (change.kept.state === 'RUNNING') this.serveWaiters(change.kept.id);
    if (this.reportedDuplicates.has(change.ignored.iid)) return;
    if (this.reportedDuplicates.size >= MAX_REPORTED_DUPLICATES) this.reportedDuplicates.clear();
    this.reportedDuplicates.add(change.ignored.iid);
    const error = new KableError(
      'DUPLICATE_NODE_ID',
      `Two nodes claim the id "${change.kept.id}" and neither is a replica: keeping ${change.kept.iid} ` +
        `(started first), ignoring ${change.ignored.iid}. Give each service its own id, or set replica: true.`,
    );
    Object.assign(error, { kept: change.kept.iid, ignored: change.ignored.iid });
    this.emitError(error);
  }

  private serveWaiters(id: string): void {
    if (this.waiters.has(id)) this.waiters.serve(id, () => this.pickNow(id));
  }

  private onConnectivity(reachable: boolean): void {
    if (reachable && this.discoveryUnreachable) {
      // Every peer gets a fresh nodeTimeout from now: the outage was nobody's silence.
      this.registry.touchAll(Date.now());
      this.send('advertisement');
    }
    this.discoveryUnreachable = !reachable;
  }

  private sweep(): void {
    const now = Date.now();
    this.stalls.tick(now);
    if (this.discoveryUnreachable) return;
    const evicted = this.registry.evictSilent(now, this.options.nodeTimeout, (since) =>
      this.stalls.listenedSince(since, now),
    );
    for (const peer of evicted) {
      this.counters.evictions++;
      this.emitSafely('peer:removed', peer, 'timeout');
    }
    const probe = this.probe.due(this.registry.all(), now);
    if (probe !== undefined) this.send('advertisement', probe);
  }

  /** 'error' with no listener would throw from EventEmitter: fall back to a warning instead. */
  private emitError(error: KableError): void {
    if (this.listenerCount('error') > 0) this.emitSafely('error', error);
    else {
      this.counters.unhandledErrors++;
      this.emitSafely('warning', { code: error.code, message: error.message });
    }
  }

  private emitSafely<K extends keyof KableNodeEvents>(event: K, ...args: KableNodeEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: KableNodeEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.counters.listenerErrors++;
      if (event !== 'warning') {
        this.emitSafely('warning', {
          code: 'KABLE_LISTENER_ERROR',
          message: `A "${event}" listener threw: ${String(error)}`,
        });
      }
    }
  }
}
