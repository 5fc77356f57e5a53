import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import type { Advert, AdvertSource } from '../node/advert.js';
import type { DiscoveryHandlers, DiscoveryTransport } from '../node/discovery-transport.js';
import { KableError } from '../node/errors.js';
import { asksEveryone } from '../node/join-answers.js';
import { WarningLimiter } from '../node/warning-limiter.js';
import {
  MAX_DATAGRAM,
  advertFromArray,
  assertAdvertFits,
  advertToArray,
  decodeValue,
  encodeValue,
} from './advert-codec.js';
import { AdvertSeal } from './advert-seal.js';
import { JoinRelay, parseAddress } from './join-relay.js';
import { ReplayGuard } from './replay-guard.js';
import { UnicastPeers, type UdpTarget } from './unicast-peers.js';

export type { UdpTarget };

export interface UdpTransportOptions {
  mode: 'broadcast' | 'multicast' | 'unicast';
  /** Broadcast address or multicast group (unused in unicast). */
  address: string;
  /** Port this node binds and, for broadcast and multicast, sends to. */
  port: number;
  /** Local interface address: binds there, and carries multicast. */
  interface: string | undefined;
  ttl: number;
  /** unicast: where to send. */
  peers: UdpTarget[];
  /** Never sends (kable watch): no gossip either. */
  listenOnly?: boolean;
  namespace: string;
  keys: Buffer[];
  /** unicast: how often to gossip known addresses, and when a silent address is dropped. */
  advertiseInterval: number;
  nodeTimeout: number;
}

/**
 * unicast: a join relayed less than this long ago (ms) is passed on to an address heard from for the
 * first time after it, up to LATE_RELAYS_PER_JOIN times: nodes started together each join before the
 * others are on their seed's send list, and still meet at once.
 */
const RECENT_JOIN_MS = 1000;
const LATE_RELAYS_PER_JOIN = 8;
/** Joins kept for late relays: each costs at most LATE_RELAYS_PER_JOIN datagrams, all within JoinRelay's budgets. */
const MAX_RECENT_JOINS = 16;

interface RecentJoin {
  body: unknown;
  /** The joiner's "host:port". */
  joiner: string;
  at: number;
  left: number;
}

/** How often host-name seeds are resolved again. */
const RESOLVE_EVERY_MS = 30_000;

const DROP_MESSAGES: Record<string, string> = {
  garbage: 'not a Kable datagram',
  oversized: `a datagram over ${MAX_DATAGRAM} bytes`,
  unsupportedVersion: 'a datagram of an unknown protocol version',
  otherNamespace: 'an advert from another namespace',
  unsealed: 'an unsealed advert (this cluster requires the key)',
  sealedUnexpected: 'a sealed advert (this node has no key)',
  unknownKey: 'an advert sealed with a key this node does not have',
  badSeal: 'an advert that failed authentication (tampered, or sealed with another key)',
  badShape: 'a malformed advert',
  replayed: 'a replayed or duplicated advert',
  outsideTimeWindow: 'an advert whose timestamp is outside the allowed window',
};

/**
 * Adverts over UDP: broadcast, multicast or unicast, each datagram sealed (or at least namespaced) and
 * checked for freshness. Several nodes on one host share the port (reuseAddr). Nothing a datagram holds
 * can throw out of the socket handler: every refusal is counted by kind and reported at most once a
 * second as a warning.
 */
export class UdpTransport implements DiscoveryTransport {
  private socket: dgram.Socket | undefined;
  private handlers: DiscoveryHandlers | undefined;
  private readonly seal: AdvertSeal;
  private readonly replay = new ReplayGuard();
  /** Random per start: tells this boot's datagrams (and our own echoes) from any other. */
  private boot = randomBytes(8).toString('hex');
  private seq = 0;
  private readonly counters = {
    datagramsSent: 0,
    datagramsReceived: 0,
    ownDatagrams: 0,
    sendErrors: 0,
    gossipSent: 0,
    gossipReceived: 0,
    answersSent: 0,
    introductionsSent: 0,
    relaysSent: 0,
    relaysReceived: 0,
  };
  /** unicast: answers a join to the joiner's address alone (see JoinAnswers). */
  readonly sendTo: ((advert: Advert, to: AdvertSource) => void) | undefined;
  private readonly relay: JoinRelay;
  private warnings: WarningLimiter;
  private readonly unicast: UnicastPeers | undefined;
  private gossipTimer: NodeJS.Timeout | undefined;
  /** unicast: the last advert sent, without its probe list (see introduce). */
  private latest: Advert | undefined;
  /** unicast: joins this node relayed lately, passed on to addresses it hears from next (see introduce). */
  private recentJoins: RecentJoin[] = [];
  private resolveTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: UdpTransportOptions) {
    this.seal = new AdvertSeal(options.namespace, options.keys);
    this.unicast =
      options.mode === 'unicast' ? new UnicastPeers(options.peers, options.nodeTimeout) : undefined;
    this.warnings = new WarningLimiter((warning) => this.handlers?.warning(warning));
    this.sendTo = this.unicast === undefined ? undefined : (advert, to) => this.answer(advert, to);
    this.relay = new JoinRelay(options.advertiseInterval / 12);
  }

  validate(advert: Advert): void {
    assertAdvertFits(this.encode(advert));
  }

  async start(handlers: DiscoveryHandlers): Promise<void> {
    this.handlers = handlers;
    this.boot = randomBytes(8).toString('hex');
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (datagram, from) => this.receive(datagram, from));
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        socket.close();
        reject(this.bindError(error));
      };
      socket.once('error', onError);
      // Broadcast and multicast must bind the wildcard address to receive datagrams sent to a group.
      const bindAddress = this.options.mode === 'unicast' ? this.options.interface : undefined;
      socket.bind(this.options.port, bindAddress, () => {
        socket.off('error', onError);
        try {
          this.configure(socket);
        } catch (error) {
          socket.close();
          reject(this.bindError(error as NodeJS.ErrnoException));
          return;
        }
        resolve();
      });
    });
    socket.on('error', (error) => this.warnings.count('socketError', `discovery socket: ${error.message}`));
    this.socket = socket;
    if (this.unicast !== undefined && this.options.listenOnly !== true) {
      const unicast = this.unicast;
      await unicast.resolveSeeds();
      this.resolveTimer = setInterval(() => void unicast.resolveSeeds(), RESOLVE_EVERY_MS);
      this.resolveTimer.unref();
      this.gossipTimer = setInterval(() => this.gossip(), this.options.advertiseInterval);
      this.gossipTimer.unref();
    }
  }

  send(advert: Advert): void {
    // What introduce() sends: this node as it stands, asking nothing (no join, no probe).
    if (this.unicast !== undefined)
      this.latest = advert.probe === undefined ? advert : { ...advert, probe: undefined };
    const socket = this.socket;
    if (socket === undefined) return;
    const datagram = this.encode(advert);
    for (const target of this.targets()) {
      this.counters.datagramsSent++;
      socket.send(datagram, target.port, target.host, (error) =>
        this.sendFailed(error, target.host, target.port),
      );
    }
  }

  /**
   * unicast: an address heard from for the first time gets this node's latest advert at once. So a
   * newcomer, answered after its join request, answers back, and that puts it on its answerers' send
   * lists within a round trip (a join request's own source is not trusted: see check()); a forged source
   * never answers back.
   */
  private introduce(to: dgram.RemoteInfo): void {
    const socket = this.socket;
    if (socket === undefined || this.latest === undefined || this.options.listenOnly === true) return;
    this.counters.introductionsSent++;
    socket.send(this.encode(this.latest), to.port, to.address, (error) =>
      this.sendFailed(error, to.address, to.port),
    );
    const now = performance.now();
    const address = `${to.address}:${to.port}`;
    this.recentJoins = this.recentJoins.filter((join) => now - join.at < RECENT_JOIN_MS && join.left > 0);
    for (const join of this.recentJoins) {
      if (join.joiner === address) continue;
      join.left--;
      this.counters.relaysSent++;
      socket.send(this.envelope(join.body, null, join.joiner), to.port, to.address, (error) =>
        this.sendFailed(error, to.address, to.port),
      );
    }
  }

  private answer(advert: Advert, to: AdvertSource): void {
    const socket = this.socket;
    if (socket === undefined) return;
    this.counters.answersSent++;
    socket.send(this.encode(advert), to.port, to.address, (error) =>
      this.sendFailed(error, to.address, to.port),
    );
  }

  async flush(advert: Advert): Promise<void> {
    const socket = this.socket;
    if (socket === undefined) return;
    const datagram = this.encode(advert);
    await Promise.all(
      this.targets().map(
        (target) =>
          new Promise<void>((resolve) => {
            this.counters.datagramsSent++;
            socket.send(datagram, target.port, target.host, () => resolve());
          }),
      ),
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.gossipTimer);
    clearInterval(this.resolveTimer);
    const socket = this.socket;
    this.socket = undefined;
    this.handlers = undefined;
    if (socket === undefined) return;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  stats(): Record<string, number> {
    const dropped: Record<string, number> = {};
    for (const [kind, count] of Object.entries(this.warnings.counts)) dropped[`dropped.${kind}`] = count;
    const unicast: Record<string, number> =
      this.unicast === undefined
        ? {}
        : { unicastTargets: this.unicast.targets().length, relaysLimited: this.relay.limited };
    return { ...this.counters, ...unicast, ...dropped };
  }

  private configure(socket: dgram.Socket): void {
    const { mode, address, ttl } = this.options;
    const iface = this.options.interface;
    if (mode === 'broadcast') socket.setBroadcast(true);
    if (mode === 'multicast') {
      socket.setMulticastTTL(ttl);
      socket.setMulticastLoopback(true);
      if (iface !== undefined) socket.setMulticastInterface(iface);
      socket.addMembership(address, iface);
    }
  }

  private bindError(error: NodeJS.ErrnoException): KableError {
    const { mode, port, address } = this.options;
    const iface = this.options.interface;
    const hint =
      error.code === 'EADDRNOTAVAIL' || error.code === 'EINVAL' || error.code === 'ENODEV'
        ? `the interface ${iface ?? '(default)'} does not exist on this host or cannot carry ${mode}`
        : error.code === 'EADDRINUSE'
          ? `port ${port} is taken by a process that does not share it`
          : error.code === 'EACCES'
            ? `no permission to use port ${port}`
            : error.message;
    return new KableError(
      'KABLE_DISCOVERY_BIND',
      `Discovery could not start (${mode}${mode === 'unicast' ? '' : ` ${address}`}, port ${port}): ${hint}.`,
      { cause: error },
    );
  }

  private targets(): UdpTarget[] {
    if (this.unicast !== undefined) return this.unicast.targets();
    return [{ host: this.options.address, port: this.options.port }];
  }

  private encode(advert: Advert): Buffer {
    return this.envelope(advertToArray(advert));
  }

  /** [boot, seq, time, ...rest], sealed: every datagram this node sends (advert, gossip, relay). */
  private envelope(...rest: unknown[]): Buffer {
    this.seq++;
    return this.seal.seal(encodeValue([this.boot, this.seq, Date.now(), ...rest]));
  }

  /** unicast: tells every known peer a sample of the addresses this node knows, so one seed is enough. */
  private gossip(): void {
    const socket = this.socket;
    if (socket === undefined || this.unicast === undefined) return;
    const sample = this.unicast.sample().map(({ host, port }) => `${host}:${port}`);
    if (sample.length === 0) return;
    const datagram = this.envelope(null, sample);
    for (const target of this.unicast.targets()) {
      this.counters.gossipSent++;
      socket.send(datagram, target.port, target.host, () => undefined);
    }
  }

  private receiveGossip(
    body: unknown,
    list: unknown,
    boot: string,
    seq: number,
    timestamp: number,
    from: dgram.RemoteInfo,
  ): string | undefined {
    if (body !== null || !Array.isArray(list) || list.length > 64) return 'badShape';
    const addresses: UdpTarget[] = [];
    for (const item of list) {
      const address = parseAddress(item);
      if (address === undefined) return 'badShape';
      addresses.push(address);
    }
    const stale = this.replay.check(boot, seq, timestamp);
    if (stale !== undefined) return stale;
    this.counters.gossipReceived++;
    // Only unicast nodes keep send lists; others ignore gossip but still count it as valid.
    if (this.unicast?.heard(from.address, from.port) === true) this.introduce(from);
    this.unicast?.told(addresses);
    return undefined;
  }

  private receive(datagram: Buffer, from: dgram.RemoteInfo): void {
    try {
      this.counters.datagramsReceived++;
      const kind = this.check(datagram, from);
      if (kind !== undefined)
        this.warnings.count(
          kind,
          `Dropped ${DROP_MESSAGES[kind] ?? kind} from ${from.address}:${from.port}.`,
        );
    } catch {
      this.warnings.count('garbage', `Dropped ${DROP_MESSAGES.garbage} from ${from.address}:${from.port}.`);
    }
  }

  /** Delivers the advert, or says why not. */
  private check(datagram: Buffer, from: dgram.RemoteInfo): string | undefined {
    if (datagram.length > MAX_DATAGRAM) return 'oversized';
    const payload = this.seal.open(datagram);
    if (typeof payload === 'string') return payload;
    let value: unknown;
    try {
      value = decodeValue(payload);
    } catch {
      return 'garbage';
    }
    if (!Array.isArray(value) || value.length < 4 || value.length > 6) return 'badShape';
    const [boot, seq, timestamp, body, gossip, joiner] = value as unknown[];
    if (
      typeof boot !== 'string' ||
      boot.length > 64 ||
      !Number.isSafeInteger(seq) ||
      !Number.isSafeInteger(timestamp)
    ) {
      return 'badShape';
    }
    if (boot === this.boot) {
      this.counters.ownDatagrams++;
      this.unicast?.isSelf(from.address, from.port);
      return undefined;
    }
    if (value.length === 5)
      return this.receiveGossip(body, gossip, boot, seq as number, timestamp as number, from);
    const advert = advertFromArray(body);
    if (advert === undefined) return 'badShape';
    // A relayed join request: [boot, seq, time, the joiner's advert, null, "host:port" of the joiner].
    const relayedFrom = value.length === 6 ? parseAddress(joiner) : undefined;
    if (value.length === 6 && (gossip !== null || relayedFrom === undefined || !asksEveryone(advert.probe)))
      return 'badShape';
    const stale = this.replay.check(boot, seq as number, timestamp as number);
    if (stale !== undefined) return stale;
    // Without a key a join request's source may be forged (and a relayed one names any address): it is
    // answered, within JoinAnswers' budgets, but joins the send list (adverts, gossip) only once a
    // datagram of its own that is not a join comes from it: a real newcomer answers its answers (see
    // introduce). A relay comes from the node that relayed it: that one is heard.
    if (
      (relayedFrom !== undefined || !asksEveryone(advert.probe)) &&
      this.unicast?.heard(from.address, from.port) === true
    )
      this.introduce(from);
    if (relayedFrom !== undefined) {
      this.counters.relaysReceived++;
      // Only unicast nodes answer a relay.
      if (this.unicast === undefined) return undefined;
      this.handlers?.advert(advert, { address: relayedFrom.host, port: relayedFrom.port });
      return undefined;
    }
    this.handlers?.advert(advert, { address: from.address, port: from.port });
    if (this.unicast !== undefined && this.options.listenOnly !== true && asksEveryone(advert.probe))
      this.relayJoin(body, from);
    return undefined;
  }

  private sendFailed(error: Error | null, host: string, port: number): void {
    if (error === null) return;
    this.counters.sendErrors++;
    this.warnings.count('sendFailed', `could not send an advert to ${host}:${port}: ${error.message}`);
  }

  /** unicast: passes a join request on to every address this node knows but the joiner's (JoinRelay). */
  private relayJoin(body: unknown, from: dgram.RemoteInfo): void {
    const socket = this.socket;
    if (
      socket === undefined ||
      this.unicast === undefined ||
      !this.relay.shouldRelay({ host: from.address, port: from.port })
    )
      return;
    const joiner = `${from.address}:${from.port}`;
    const datagram = this.envelope(body, null, joiner);
    // The joiner's advert was checked to fit with room for eight probed peers; a join names one.
    if (datagram.length > MAX_DATAGRAM) return;
    if (this.recentJoins.length >= MAX_RECENT_JOINS) this.recentJoins.shift();
    this.recentJoins.push({ body, joiner, at: performance.now(), left: LATE_RELAYS_PER_JOIN });
    for (const target of this.unicast.targets()) {
      if (target.host === from.address && target.port === from.port) continue;
      this.counters.relaysSent++;
      socket.send(datagram, target.port, target.host, (error) =>
        this.sendFailed(error, target.host, target.port),
      );
    }
  }
}
