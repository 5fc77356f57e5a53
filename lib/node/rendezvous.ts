/**
 * Rendezvous (highest random weight) hashing with bounded loads: every caller that knows the same key
 * and the same set of replicas picks the same replica, without talking to anyone, and when a replica
 * comes or goes only the keys whose first choice it is (or becomes) move.
 *
 * Each replica is known by an identity hash (of its data-plane `host:port`, see `identityHash`); a key is
 * hashed once per request (`keyHash`); the score of a replica for a key mixes the two, and the highest
 * score wins. A replica whose load (this caller's requests in flight to it) is above the bound passes
 * the key on to the next score, as in consistent hashing with bounded loads (Mirrokni, Thorup and
 * Zadimoghaddam, 2016): see `loadBound`. A key that already has requests in flight from this caller
 * passes a replica on sooner, so the hot keys shed first: see `loadLimit`.
 *
 * The loads are only as fresh as the caller's last read. A caller that sends on a reply (a closed loop)
 * picks in the middle of its reads: one replica's replies just read, its load near 0, while the other
 * replicas' replies, already received, wait unread in their sockets and their loads still count them.
 * Replicas that answer their whole queue at once (4 processes on 2 cores answer 17 replies a read on
 * average) then look full at every pick but one, and their keys pass on: in bench/affinity.ts, 74% of
 * the calls for keys outside the 10 hottest reached their home, every miss being a home among the
 * candidates over its limit (19.8 in flight against a bound of 17.5, the least loaded at 4.4). No rule
 * on such loads keeps the keys home within the bound: simulated, every variant tried (a bound from the
 * recent peak of the total, keys in flight going home only up to the mean, hot keys to the least
 * loaded) gave 65-83%. So `select` with `spill` false gives none for a first choice over its limit,
 * and the client (outbound-request.ts) looks again once, at the end of the event loop's turn, when every
 * socket readable in the turn has been read (`EndOfTurn`; sooner if a read of that replica's replies
 * leaves it within the limit), and only then passes the key on: about 90% at home, the bound kept. The
 * choice is still a function of the key, the replica set and this caller's own loads, read a little
 * later.
 */

/** How far above the mean load a replica may be before its keys pass on: 25%, as in the paper's ε. */
export const LOAD_FACTOR = 1.25;

/**
 * 32-bit hash of a string: FNV-1a over its UTF-16 code units, then the murmur3 finalizer, so that keys
 * differing in one character differ in about half the bits. Not cryptographic: a caller choosing keys
 * can aim them at one replica, which the load bound then spreads.
 */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return mix32(hash);
}

/** The murmur3 32-bit finalizer: a bijection on 32 bits in which every input bit flips about half the output bits. */
export function mix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The hash of an affinity key; numbers are hashed as their decimal text, so 42 and '42' are one key.
 * Signed 32 bits (`hashString | 0`), not the unsigned value: V8 keeps a signed 32-bit integer as a small
 * integer, while an unsigned one of 2^31 or more (half of all keys) is a heap number, allocated again
 * wherever it is stored (a request's field) and hashed slowly as a Map key (the keys in flight). The
 * choice is the same for both forms (`score` reads its key as 32 bits), so callers that hash keys
 * unsigned agree with this one on every key's replica.
 */
export function keyHash(key: string | number): number {
  return hashString(typeof key === 'string' ? key : String(key)) | 0;
}

/**
 * A replica's identity hash: of its data-plane address, `host:port`. Every caller sees the same
 * address in the replica's advert, so every caller computes the same scores; a replica restarted on the
 * same address gets its keys back, while one on a new port (port 0) is a new identity.
 */
export function identityHash(host: string, port: number): number {
  return hashString(`${host}:${port}`);
}

const addressHashes = new WeakMap<object, { host: string; port: number; hash: number }>();

/**
 * `identityHash` of a replica's current address, kept per replica object until its address changes:
 * lists that are new arrays for each message (an event's replicas of one service) hash nothing again.
 */
export function addressHash(replica: { host: string; port: number }): number {
  const known = addressHashes.get(replica);
  if (known !== undefined && known.host === replica.host && known.port === replica.port) return known.hash;
  const hash = identityHash(replica.host, replica.port);
  addressHashes.set(replica, { host: replica.host, port: replica.port, hash });
  return hash;
}

/** A replica's score for a key: higher wins. The mix keeps replicas' scores for one key independent. */
export function score(key: number, identity: number): number {
  // The golden-ratio multiply spreads identities before the XOR, so two identities close in value
  // still give unrelated scores.
  return mix32(key ^ Math.imul(identity, 0x9e3779b1));
}

/**
 * The most requests a replica may already have in flight from this caller and still take the key:
 * ⌈1.25 × mean⌉, the mean being over the candidates and counting this request ((total + 1) / count).
 * With this request it then has at most ⌈1.25 × mean⌉ + 1. At least 1, so a replica with one request
 * in flight keeps its keys when the others are idle.
 */
export function loadBound(total: number, count: number): number {
  return Math.ceil((LOAD_FACTOR * (total + 1)) / count);
}

/**
 * The most requests a replica may already have in flight from this caller and still take a key that
 * has `keyInFlight` requests of its own in flight from this caller, under `bound` (see `loadBound`).
 *
 * A key with none in flight takes the replica while its load is at most the bound (with this request,
 * at most bound + 1, the issue's ⌈1.25 × mean⌉ + 1). A key with k in flight passes the replica on k
 * places earlier, at bound − k (never below 1): the hotter a key is right now, the sooner it sheds, so
 * that when a replica fills, its hottest keys move and the keys that come only now and then stay home.
 * With one step for every key with any in flight, the keys just below the hottest (one or two in
 * flight each) took the place left and pushed the rare ones out with them: in a simulation of
 * Zipf(1.1) keys, 64 in flight, replicas answering in bursts of 4, the share of calls for keys outside
 * the 10 hottest that reached their home went from 80% to 88% over 4 replicas and from 69% to 76% over
 * 8 (random completion order: 96% to 99%, 90% to 95%). Except at a bound of 1: a key's second request
 * in flight still goes home when that replica has just the first (2 is within bound + 1), so a caller
 * with one or two requests at a time always reaches the key's own replica.
 */
export function loadLimit(bound: number, keyInFlight: number): number {
  return bound > 1 ? bound - Math.min(keyInFlight, bound - 1) : bound;
}

/**
 * Picks a candidate for a key: the highest score whose load is within `loadLimit` (lower the more
 * requests the key already has in flight); if none is, the least loaded (at most the mean, so within
 * bound + 1). One instance per candidate list (a route): the identity hashes are computed again only
 * when the list is another array, and the scores go into an array reused from request to request.
 */
export class Rendezvous<T> {
  private hashedFor: readonly T[] | undefined;
  private identities: number[] = [];
  private readonly scores: number[] = [];
  private readonly loads: number[] = [];
  /** Picks that passed the key's first choice over for its load. */
  passedOn = 0;

  constructor(
    /** A candidate's identity hash (see `identityHash`). */
    private readonly identity: (candidate: T) => number,
    /** This caller's requests in flight to a candidate. */
    private readonly load: (candidate: T) => number,
  ) {}

  /** The key's first choice among `candidates`, whatever the loads. */
  first(candidates: readonly T[], key: number): T | undefined {
    const identities = this.identitiesOf(candidates);
    let best: T | undefined;
    let bestScore = -1;
    for (let i = 0; i < candidates.length; i++) {
      const s = score(key, identities[i]);
      if (s > bestScore) {
        bestScore = s;
        best = candidates[i];
      }
    }
    return best;
  }

  /** The candidates' identity hashes, computed again only when the list is another array. */
  private identitiesOf(candidates: readonly T[]): number[] {
    if (candidates !== this.hashedFor) {
      this.identities = candidates.map(this.identity);
      this.hashedFor = candidates;
    }
    return this.identities;
  }

  /**
   * The key's replica among `candidates`. `keyInFlight` is how many requests with this key this caller
   * already has in flight (0 when not tracked, as for events): see `loadLimit`. With `spill` false, a
   * first choice over its limit gives undefined instead of the next choice: the caller may look again
   * once it has read the replies already received (see `EndOfTurn` and the class comment).
   */
  select(candidates: readonly T[], key: number, keyInFlight = 0, spill = true): T | undefined {
    const count = candidates.length;
    if (count <= 1) return candidates[0];
    const identities = this.identitiesOf(candidates);
    const scores = this.scores;
    let best = 0;
    let bestScore = -1;
    for (let i = 0; i < count; i++) {
      const s = score(key, identities[i]);
      scores[i] = s;
      // Equal scores (equal identities) go to the earlier one in the cluster-wide order, as on every caller.
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    }
    // The usual case: the limit is at least 1, so a first choice with at most one in flight needs no total.
    const first = this.load(candidates[best]);
    if (first <= 1) return candidates[best];
    const loads = this.loads;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const load = i === best ? first : this.load(candidates[i]);
      loads[i] = load;
      total += load;
    }
    const limit = loadLimit(loadBound(total, count), keyInFlight);
    if (first <= limit) return candidates[best];
    if (!spill) return undefined;
    this.passedOn++;
    // The next scores, in order: each taken one is marked -1 (scores are unsigned). A hot key's limit
    // may be under every load: then the least loaded, the earliest in score order among equals.
    let least = best;
    for (let step = 1; step < count; step++) {
      scores[best] = -1;
      bestScore = -1;
      for (let i = 0; i < count; i++) {
        if (scores[i] > bestScore) {
          bestScore = scores[i];
          best = i;
        }
      }
      if (loads[best] <= limit) return candidates[best];
      if (loads[best] < loads[least]) least = best;
    }
    return candidates[least];
  }
}
