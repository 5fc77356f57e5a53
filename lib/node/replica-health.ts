/**
 * How this caller sees each replica: a peak-EWMA estimate of its send-to-reply time, and its recent
 * failures. A replica far slower than its service's others (a latency outlier) or one whose last replies
 * all failed (ejected) gets only probe traffic, so round robin over the rest stays exact and the bad one
 * can show that it healed. Framework-free; the clock is injected so the rules can be tested with a fake.
 */

/** Half-life of the peak-EWMA estimate: a sample this old weighs half as much as a fresh one. */
export const LATENCY_HALF_LIFE_MS = 10_000;
/**
 * The latency-outlier rule. A replica past its warm-up is a latency outlier when, all at once:
 * - its service has at least REFERENCE_REPLICAS other replicas past their warm-up and not ejected, and
 *   the reference is the lower median of their typical times (never its own);
 * - its typical time (smoothed, see {@link Replica.typical}) went above OUTLIER_FACTOR x the reference and
 *   above OUTLIER_FLOOR_MS at least SLOW_FOR_MS and SLOW_REPLIES replies ago, and has not fallen to
 *   HEAL_FACTOR x the reference (or the floor) since;
 * - its last OUTLIER_STREAK replies each took more than OUTLIER_FACTOR x the reference and the floor;
 * - fewer than a third of its service are left out already (see {@link maxExcluded}).
 *
 * Why the time span: a replica starved of CPU for a moment (a busy machine, a GC pause, a container
 * throttled) answers every request caught in the stall late, and those replies arrive together when it
 * ends; then it is fast again, and its typical time falls back within a few tens of replies. Counting
 * replies alone, such a burst read as an outlier on a loaded 2-core machine (a replica with nothing in
 * flight when the test killed it; two replicas in rotation out of three). A replica that is really slower
 * stays slow: at 10 ms beside 2 ms ones, a sequential caller reaches the span after about 100 calls.
 * Why two others: one other replica is no reference (its own pause would decide), and with two replicas
 * leaving one out doubles the other's load on a latency signal alone; failures still eject.
 * The caller's own pauses make every replica's replies slow at once: they raise the reference with the
 * replica, so they are not discounted apart (OwnStalls, the discovery sweep's record, only sees pauses
 * longer than a sweep period).
 */
export const OUTLIER_FACTOR = 3;
/** ...and above this many ms, so that sub-millisecond jitter between fast replicas never counts. */
export const OUTLIER_FLOOR_MS = 5;
/** ...its last this many replies each slow: one slow reply (a GC pause) is not enough. */
export const OUTLIER_STREAK = 3;
/** ...its typical time over the bar (and not back under HEAL_FACTOR x) for at least this long... */
export const SLOW_FOR_MS = 500;
/** ...and this many replies. */
export const SLOW_REPLIES = 5;
/** ...beside at least this many other judged replicas of its service. */
export const REFERENCE_REPLICAS = 2;
/**
 * Replies of a replica neither judged for latency nor counted in its typical time: a fresh process
 * answers its first requests slowly (JIT, a new connection), and a replica left out then would have one
 * probe a second to warm up with. Under load a fresh replica was left out in every round of a churn test.
 */
export const WARM_UP_REPLIES = 8;
/**
 * An outlier is one until HEAL_STREAK replies in a row (probes, one a second) each take at most this many
 * times the reference, or at most the floor: one fast-looking probe against a reference that a busy
 * moment raised does not bring it back for more slow requests. Its typical time then restarts from the
 * last probe's, so that the span starts again.
 */
export const HEAL_FACTOR = 2;
export const HEAL_STREAK = 2;
/** An outlier, or an ejected replica whose ejection time is over, gets one request per this many ms. */
export const PROBE_INTERVAL_MS = 1_000;
/** Consecutive failed replies (transport failures, internal errors) that eject a replica. */
export const EJECT_AFTER = 5;
/** First ejection time; the n-th consecutive ejection lasts n times this, up to EJECT_MAX_MS. */
export const EJECT_BASE_MS = 30_000;
export const EJECT_MAX_MS = 300_000;
/** Services with more replicas than this refresh their median at most every MEDIAN_REFRESH_MS. */
const EXACT_MEDIAN_UP_TO = 8;
const MEDIAN_REFRESH_MS = 100;

const DECAY_TAU = LATENCY_HALF_LIFE_MS / Math.LN2;
/** Weight of a new reply in the typical time (TCP's smoothed RTT uses the same 1/8). */
const TYPICAL_WEIGHT = 1 / 8;

export type Clock = () => number;

class ServiceGroup {
  constructor(readonly service: string) {}
  readonly replicas = new Set<Replica>();
  /** Large services only: the lower median of every judged replica's typical time, and how many. */
  median = 0;
  judged = 0;
  medianAt = -Infinity;
  /** Reused to find the median without allocating. */
  scratch: number[] = [];
}

/** One replica's view; updated in place on every reply (no allocation on the hot path). */
export class Replica {
  /**
   * Peak-EWMA of send-to-reply ms (0 until the first reply): believes a slower reply at once, forgets it
   * with a 10 s half-life. The cost for 'least-latency'.
   */
  estimate = 0;
  /**
   * Smoothed send-to-reply ms per reply (weight 1/8; 0 until the first reply): the replica's typical time,
   * whose service median is the reference for the outlier rule. Not the peak: a cold start's first slow
   * reply would inflate a peak estimate, and with it the median, for tens of seconds.
   */
  typical = 0;
  /** When `estimate` was last updated. */
  stamp = 0;
  /** Consecutive replies above the outlier threshold. */
  slowStreak = 0;
  /**
   * When its typical time went above the outlier bar (NaN before, and again once it falls to the
   * healing bar), and replies since.
   */
  slowSince = Number.NaN;
  slowReplies = 0;
  /** Replies timed so far, up to the warm-up (see WARM_UP_REPLIES). */
  replies = 0;
  /** While an outlier: consecutive replies under the healing threshold. */
  fastStreak = 0;
  outlier = false;
  /** Consecutive failed replies. */
  failures = 0;
  /** Ejected until this time, then on probation (probes only) until a probe succeeds. */
  ejectedUntil = 0;
  ejected = false;
  /** Consecutive ejections (reset by a successful reply): the next ejection lasts this + 1 times the base. */
  ejections = 0;
  nextProbeAt = 0;

  constructor(
    readonly iid: string,
    readonly group: ServiceGroup,
  ) {}

  /** Only probes reach it: a latency outlier or an ejected replica. */
  get excluded(): boolean {
    return this.outlier || this.ejected;
  }

  /** The estimate decayed towards zero by the time since the last reply (read-only; for choice by cost). */
  decayed(now: number): number {
    const elapsed = now - this.stamp;
    return elapsed <= 0 ? this.estimate : this.estimate * Math.exp(-elapsed / DECAY_TAU);
  }
}

export interface ReplicaHealthStats {
  /** Replicas this caller sends only probes to because they are far slower than their service's others. */
  latencyOutliers: number;
  /** Replicas this caller sends nothing (or only probes) to because their last replies failed. */
  ejectedReplicas: number;
  /** Ejections so far (reason: consecutive failures). */
  ejections: number;
  /** Times a replica became a latency outlier so far. */
  latencyOutlierEvents: number;
  /** Requests sent to an outlier or ejected replica as probes. */
  probeRequests: number;
}

/**
 * Every replica's health as this caller sees it. `version` changes whenever a replica becomes or stops
 * being excluded, so routes cached on it are recomputed then and only then.
 */
export class ReplicaHealth {
  version = 0;
  private readonly replicas = new Map<string, Replica>();
  private readonly groups = new Map<string, ServiceGroup>();
  private ejectionCount = 0;
  private outlierCount = 0;
  private probeCount = 0;

  constructor(
    /** How many replicas the service has now (for the cap on ejections: a third of them). */
    private readonly serviceSize: (service: string) => number,
    private readonly clock: Clock = () => performance.now(),
    /** Replies of each replica not judged (see WARM_UP_REPLIES); the rules' tests set 0. */
    private readonly warmUp = WARM_UP_REPLIES,
    /**
     * Whether outliers and failing replicas are left out at all (the client's `excludeUnhealthy`); when
     * false, only the estimates are kept (for 'least-latency' and the stats).
     */
    private readonly excludes = true,
  ) {}

  /** The replica's record, made on first use. */
  of(iid: string, service: string): Replica {
    let replica = this.replicas.get(iid);
    if (replica === undefined) {
      if (this.replicas.size >= 100_000) this.clear();
      let group = this.groups.get(service);
      if (group === undefined) this.groups.set(service, (group = new ServiceGroup(service)));
      replica = new Replica(iid, group);
      group.replicas.add(replica);
      this.replicas.set(iid, replica);
    }
    return replica;
  }

  peek(iid: string): Replica | undefined {
    return this.replicas.get(iid);
  }

  /** Forgets a replica that left (a new one with the same id starts fresh). */
  forget(iid: string): void {
    const replica = this.replicas.get(iid);
    if (replica === undefined) return;
    this.replicas.delete(iid);
    replica.group.replicas.delete(replica);
    replica.group.medianAt = -Infinity;
    if (replica.group.replicas.size === 0) this.groups.delete(replica.group.service);
    if (replica.excluded) this.version++;
  }

  /**
   * A reply that is the service's value, `ms` after the request was sent: feeds the estimates, ends a
   * failure streak and any ejection.
   */
  answered(replica: Replica, ms: number): void {
    const now = this.clock();
    if (replica.estimate === 0 || ms > replica.estimate) {
      // Peak: a slower reply is believed at once; a faster one only pulls the estimate down gradually.
      replica.estimate = ms;
    } else {
      const weight = Math.exp(-Math.max(0, now - replica.stamp) / DECAY_TAU);
      replica.estimate = replica.estimate * weight + ms * (1 - weight);
    }
    replica.stamp = now;
    this.recovered(replica);
    if (replica.replies < this.warmUp) {
      replica.replies++;
      return;
    }
    replica.typical = replica.typical === 0 ? ms : replica.typical + (ms - replica.typical) * TYPICAL_WEIGHT;
    if (!this.excludes) return;
    const reference = this.reference(replica, now);
    const slowReply = ms > OUTLIER_FACTOR * reference && ms > OUTLIER_FLOOR_MS;
    let outlier: boolean;
    if (replica.outlier) {
      // Hysteresis: an outlier heals only with replies well under the bar that made it one, so a replica
      // near the bar does not flap in and out. With too few others to compare with (NaN), every reply
      // counts as fast.
      if (ms > HEAL_FACTOR * reference && ms > OUTLIER_FLOOR_MS) replica.fastStreak = 0;
      else replica.fastStreak++;
      outlier = replica.fastStreak < HEAL_STREAK;
    } else {
      replica.slowStreak = slowReply ? replica.slowStreak + 1 : 0;
      // Slow since its typical time went over the bar, until it falls under the healing bar: under load,
      // a replica 3-4x slower hovers around 3x, and at thousands of replies a second it would dip under
      // it now and then however slow it stays.
      const over = Number.isNaN(replica.slowSince) ? OUTLIER_FACTOR : HEAL_FACTOR;
      if (replica.typical > over * reference && replica.typical > OUTLIER_FLOOR_MS) {
        if (Number.isNaN(replica.slowSince)) {
          replica.slowSince = now;
          replica.slowReplies = 0;
        }
        replica.slowReplies++;
      } else replica.slowSince = Number.NaN;
      outlier =
        replica.slowStreak >= OUTLIER_STREAK &&
        replica.slowReplies >= SLOW_REPLIES &&
        now - replica.slowSince >= SLOW_FOR_MS &&
        this.mayExclude(replica);
    }
    if (outlier !== replica.outlier) {
      replica.outlier = outlier;
      replica.slowStreak = 0;
      replica.fastStreak = 0;
      replica.slowSince = Number.NaN;
      if (outlier) {
        this.outlierCount++;
        replica.nextProbeAt = now + PROBE_INTERVAL_MS;
      } else {
        // Healed: its typical time restarts from now, or the span would be met again at once.
        replica.typical = ms;
      }
      this.version++;
    }
  }

  /**
   * A reply that is the application's error (an RpcException): the replica works, so its failure streak
   * and any ejection end; its time is not a latency sample (errors are usually answered early, and would
   * make the replicas that do the work look slow).
   */
  recovered(replica: Replica): void {
    replica.failures = 0;
    replica.ejections = 0;
    if (replica.ejected) {
      replica.ejected = false;
      this.version++;
    }
  }

  /**
   * The replica answers PINGs again after a hang (see liveness): the timeouts of the requests caught in
   * the hang were the hang's, which liveness already handled, so they do not keep it ejected.
   */
  revived(iid: string): void {
    const replica = this.replicas.get(iid);
    if (replica !== undefined) this.recovered(replica);
  }

  /**
   * A reply that failed: the connection was lost, the request timed out, or the handler threw something
   * other than an RpcException. The EJECT_AFTER-th in a row ejects the replica, unless a third of its
   * service's replicas (at least one, with two or more replicas) are left out already.
   */
  failed(replica: Replica): void {
    replica.failures++;
    if (replica.ejected) {
      // A failed probe (not a late reply to a request sent before the ejection): ejected again, longer.
      if (this.clock() >= replica.ejectedUntil) this.eject(replica);
      return;
    }
    if (replica.failures < EJECT_AFTER || !this.excludes) return;
    if (!replica.outlier && !this.mayExclude(replica)) return;
    replica.ejected = true;
    this.eject(replica);
    this.version++;
  }

  private eject(replica: Replica): void {
    const now = this.clock();
    replica.ejections++;
    this.ejectionCount++;
    replica.ejectedUntil = now + Math.min(EJECT_MAX_MS, EJECT_BASE_MS * replica.ejections);
    replica.nextProbeAt = replica.ejectedUntil;
  }

  /**
   * Whether an excluded replica may be sent one request now (a probe); if so, its next probe is one
   * interval away.
   */
  probe(replica: Replica): boolean {
    const now = this.clock();
    if (now < replica.nextProbeAt) return false;
    replica.nextProbeAt = now + PROBE_INTERVAL_MS;
    this.probeCount++;
    return true;
  }

  stats(): ReplicaHealthStats {
    let latencyOutliers = 0;
    let ejected = 0;
    for (const replica of this.replicas.values()) {
      if (replica.ejected) ejected++;
      else if (replica.outlier) latencyOutliers++;
    }
    return {
      latencyOutliers,
      ejectedReplicas: ejected,
      ejections: this.ejectionCount,
      latencyOutlierEvents: this.outlierCount,
      probeRequests: this.probeCount,
    };
  }

  /** Every excluded replica with its reason, for diagnostics. */
  excluded(): { iid: string; reason: 'latency' | 'failures'; estimateMs: number; typicalMs: number }[] {
    const list: { iid: string; reason: 'latency' | 'failures'; estimateMs: number; typicalMs: number }[] = [];
    for (const replica of this.replicas.values()) {
      if (replica.excluded) {
        list.push({
          iid: replica.iid,
          reason: replica.ejected ? 'failures' : 'latency',
          estimateMs: replica.estimate,
          typicalMs: replica.typical,
        });
      }
    }
    return list;
  }

  private clear(): void {
    this.replicas.clear();
    this.groups.clear();
    this.version++;
  }

  /**
   * Whether one more of the replica's service may be left out: at most a third of a service's replicas
   * are outliers or ejected at once (see maxExcluded).
   */
  private mayExclude(replica: Replica): boolean {
    let excluded = 0;
    for (const other of replica.group.replicas) if (other.excluded) excluded++;
    return excluded < maxExcluded(this.serviceSize(replica.group.service));
  }

  /**
   * The reference "normal" latency for `replica`: the lower median (the faster of two) of the typical
   * times of the other replicas of its service that are past their warm-up and not ejected; NaN (no
   * comparison is true) with fewer than REFERENCE_REPLICAS of them. Exact for small services; for large
   * ones, the median of all of them, refreshed at most every MEDIAN_REFRESH_MS (one replica barely moves
   * it).
   */
  private reference(replica: Replica, now: number): number {
    const group = replica.group;
    if (group.replicas.size > EXACT_MEDIAN_UP_TO) {
      if (now - group.medianAt >= MEDIAN_REFRESH_MS) {
        group.judged = this.sortTypicals(group, undefined);
        group.median = group.judged === 0 ? 0 : group.scratch[(group.judged - 1) >> 1];
        group.medianAt = now;
      }
      const others = group.judged - (replica.typical === 0 || replica.ejected ? 0 : 1);
      return others < REFERENCE_REPLICAS ? Number.NaN : group.median;
    }
    const count = this.sortTypicals(group, replica);
    return count < REFERENCE_REPLICAS ? Number.NaN : group.scratch[(count - 1) >> 1];
  }

  /**
   * Sorts the typical times of the group's judged replicas (past warm-up, not ejected), but `except`, into
   * the group's reused array; returns how many.
   */
  private sortTypicals(group: ServiceGroup, except: Replica | undefined): number {
    const values = group.scratch;
    let count = 0;
    for (const other of group.replicas) {
      if (other === except || other.ejected || other.typical === 0) continue;
      // Insertion sort into the reused array: a handful of replicas, no allocation once it has grown.
      let i = count++;
      while (i > 0 && values[i - 1] > other.typical) {
        values[i] = values[i - 1];
        i--;
      }
      values[i] = other.typical;
    }
    return count;
  }
}

/**
 * At most a third of a service's replicas are left out (latency outliers and ejected ones together), so
 * a wide failure (a shared database down) never piles all traffic on a few, and a busy moment of the
 * caller's own, which makes every replica's replies look slow at once, can cost one replica its share
 * for a few seconds but never send everything to the one replica that had nothing to answer (a stalled
 * one, before liveness finds it out). With two to five replicas one may be; a single replica never is
 * (there is nowhere else to send: its failures are the caller's answer).
 */
export function maxExcluded(replicas: number): number {
  return replicas <= 1 ? 0 : Math.max(1, Math.floor(replicas / 3));
}
