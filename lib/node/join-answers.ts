import type { AdvertSource } from './advert.js';
import { RateBudget, RateBudgets } from './rate-budget.js';

/**
 * The probe entry that names every node. A joining node's first advertisement carries it (a probe list
 * of one), so the silence probe's wire format and answer path carry the join as well: an older node sees
 * an index no node has (indexes are below 2^48) and simply does not answer.
 */
export const EVERYONE = Number.MAX_SAFE_INTEGER;

/** Milliseconds of spreading window per known node: a newcomer then takes in at most two answers per ms. */
export const WINDOW_PER_PEER_MS = 0.5;
/**
 * When a newcomer has heard from nobody this long after its join request, it asks again: one lost
 * datagram (or a seed that was restarting) would otherwise leave it waiting for periodic adverts, up
 * to a whole advertiseInterval. Only delays shorter than the interval are used (periodic adverts come
 * sooner otherwise); the first is past the answerers' 250 ms rate limit, so a request that did arrive
 * but whose answers were lost gets fresh ones. A node alone in its cluster sends these two and stops.
 */
export const JOIN_RETRIES_MS = [300, 1000];
/** Most requesters (unicast addresses) remembered for the rate limit, and most answers pending at once. */
export const MAX_REQUESTERS = 1024;

/** Whether an advert's probe list is a join request ("who is there?"). */
export function asksEveryone(probe: readonly number[] | undefined): boolean {
  return probe !== undefined && probe.includes(EVERYONE);
}

/**
 * The window over which a cluster's answers to one join are spread: half a millisecond per node this
 * node knows (three nodes: 1.5 ms; 1,000 nodes: 500 ms), at most half an advert interval, so the
 * newcomer's socket sees about two answers per millisecond however large the cluster.
 */
export function joinWindow(knownNodes: number, advertiseInterval: number): number {
  return Math.min(knownNodes * WINDOW_PER_PEER_MS, advertiseInterval / 2);
}

/**
 * Join answers sent to one address (whatever its ports) in a burst; then 1000 / gap a second (four with
 * the defaults). Keyed by address, not address:port: a forged request names any port it likes.
 */
export const JOIN_ANSWER_BURST_PER_ADDRESS = 4;
/**
 * Join answers one node sends a second, to all addresses together (a burst of as many): requests
 * forged from many addresses cost each node at most this many datagrams a second. Over it, requests
 * are dropped (counted in joinAnswersOverBudget); a real newcomer asks again (JOIN_RETRIES_MS) and
 * hears periodic adverts anyway.
 */
export const JOIN_ANSWERS_PER_SECOND = 100;

interface Requester {
  /** When the answer is due, while one is pending. */
  timer: NodeJS.Timeout | undefined;
  /** When the oldest request not yet answered arrived. */
  askedAt: number;
  lastAnswer: number;
  /** Its address (without the port), or '*' for everyone. */
  address: string;
}

/** Where the answer goes: `undefined` means one advert to the whole cluster (broadcast, multicast). */
export type AnswerTarget = AdvertSource | undefined;

/**
 * Answers join requests, each at a random moment within the spreading window, and no more often than
 * once per `gap` ms per requester, so a node restarting in a loop costs each peer at most 1000 / gap
 * answers a second (four with the defaults), and a join of a node into 1,000 costs each of them one.
 *
 * Where answers go to the whole cluster there is one requester, "everyone": every request that arrives
 * while an answer is pending is served by it, and an answer is skipped when any advert of this node
 * went out after the request (that advert was the answer). Where the transport can answer one address
 * (unicast), each requester's address and port has its own pending answer and pace, and each address,
 * whatever its ports, a budget of its own: JOIN_ANSWER_BURST_PER_ADDRESS at once, then 1000 / gap a
 * second, at most that many pending (more are dropped); all of them together at most
 * JOIN_ANSWERS_PER_SECOND. So a forged request naming another host's address, its port changed each
 * time, makes this node send that host at most four answers a second with the defaults, and forged
 * requests from any number of addresses at most JOIN_ANSWERS_PER_SECOND.
 */
export class JoinAnswers {
  private readonly requesters = new Map<string, Requester & { to: AnswerTarget }>();
  private readonly perAddress: RateBudgets;
  /** Answers pending per address (whatever the port); an address with none is not listed. */
  private readonly pendingPerAddress = new Map<string, number>();
  private readonly overall: RateBudget;
  private lastSentToAll = Number.NEGATIVE_INFINITY;
  requests = 0;
  answers = 0;
  /** Requests served by an answer (or advert) already on its way, or refused for lack of room. */
  coalesced = 0;
  /** Requests dropped because their address, or this node, had answered as often as it may. */
  overBudget = 0;
  failed = 0;

  constructor(
    private readonly gap: number,
    private readonly window: () => number,
    private readonly answer: (to: AnswerTarget) => void,
    private readonly random: () => number = Math.random,
    answersPerSecond = JOIN_ANSWERS_PER_SECOND,
  ) {
    this.perAddress = new RateBudgets(1000 / gap, JOIN_ANSWER_BURST_PER_ADDRESS, MAX_REQUESTERS);
    this.overall = new RateBudget(answersPerSecond, answersPerSecond);
  }

  /** A join request arrived; `to` is where to answer (undefined: to everyone). */
  request(to: AnswerTarget, now: number): void {
    this.requests++;
    const key = to === undefined ? '*' : `${to.address}:${to.port}`;
    let requester = this.requesters.get(key);
    if (requester !== undefined && requester.timer !== undefined) {
      this.coalesced++;
      return;
    }
    const address = to === undefined ? '*' : to.address;
    const pending = this.pendingPerAddress.get(address) ?? 0;
    const budget = this.perAddress.of(address, now);
    if (budget === undefined || pending >= JOIN_ANSWER_BURST_PER_ADDRESS) {
      this.overBudget++;
      return;
    }
    if (requester === undefined) {
      if (this.requesters.size >= MAX_REQUESTERS && !this.forgetOne(now)) {
        this.coalesced++;
        return;
      }
      requester = { to, timer: undefined, askedAt: now, lastAnswer: Number.NEGATIVE_INFINITY, address };
      this.requesters.set(key, requester);
    }
    requester.askedAt = now;
    const spread = this.random() * this.window();
    const at = Math.max(now + spread, requester.lastAnswer + this.gap, budget.reserve(now));
    const waiting = requester;
    this.pendingPerAddress.set(address, pending + 1);
    waiting.timer = setTimeout(() => this.fire(waiting), Math.ceil(at - now));
    waiting.timer.unref();
  }

  /** An advert went to the whole cluster: it answers every request to "everyone" made before it. */
  sentToAll(now: number): void {
    this.lastSentToAll = now;
  }

  /** Drops every pending answer (the node is going down). */
  cancel(): void {
    for (const requester of this.requesters.values()) clearTimeout(requester.timer);
    this.requesters.clear();
    this.pendingPerAddress.clear();
    this.perAddress.clear();
  }

  private fire(requester: Requester & { to: AnswerTarget }): void {
    requester.timer = undefined;
    const pending = (this.pendingPerAddress.get(requester.address) ?? 1) - 1;
    if (pending > 0) this.pendingPerAddress.set(requester.address, pending);
    else this.pendingPerAddress.delete(requester.address);
    const now = Date.now();
    if (requester.to === undefined && this.lastSentToAll > requester.askedAt) {
      this.coalesced++;
      return;
    }
    if (!this.overall.take(now)) {
      this.overBudget++;
      return;
    }
    requester.lastAnswer = now;
    this.answers++;
    try {
      this.answer(requester.to);
    } catch {
      // Sending never throws by contract; a timer callback must not be the exception that proves it.
      this.failed++;
    }
  }

  /** Makes room by forgetting a requester with nothing pending whose rate limit has run out. */
  private forgetOne(now: number): boolean {
    for (const [key, requester] of this.requesters) {
      if (requester.timer === undefined && now - requester.lastAnswer >= this.gap) {
        this.requesters.delete(key);
        return true;
      }
    }
    return false;
  }
}
