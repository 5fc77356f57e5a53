// Issue 32's five balancing scenarios, each against round robin without exclusion (excludeUnhealthy:
// false, what every release before it did) in the same run: three replicas of the "uneven" service as
// processes (bench/servers/uneven-service.ts), whose handler time and failures are switched at run time.
// Part of `npm run bench`; alone: `npm run bench -- --only=balancing [--smoke]` (smoke: reduced scale).
// Reports p50/p99/p99.9, each replica's share (the odd one last) and failed calls, and a verdict line
// per figure of the issue.
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../lib/nest/kable.client.js';
import { loopbackMulticast, median, quantile, run, type Child } from './support.js';

export interface BalancingScale {
  /** Sequential calls not measured first (the issue: "after the first 200 calls"). */
  warmUp: number;
  /** Sequential calls measured. */
  calls: number;
  /** Concurrent callers (requests in flight) for the throughput scenarios. */
  lanes: number;
  /** How long each throughput run lasts, ms (after a warm-up of as long). */
  throughputMs: number;
  /** Callers (clients, each with its own view) and sequential calls of each, for the failing replica. */
  callers: number;
  callsPerCaller: number;
  /** Interleaved pairs run for scenario 5's ratios (plain / default) and scenario 2's (two alone / default). */
  repeats: number;
}

export const FULL_SCALE: BalancingScale = {
  warmUp: 200,
  calls: 3000,
  lanes: 64,
  throughputMs: 5000,
  callers: 4,
  callsPerCaller: 1000,
  repeats: 5,
};
export const SMOKE_SCALE: BalancingScale = {
  warmUp: 200,
  calls: 600,
  lanes: 64,
  throughputMs: 1500,
  callers: 2,
  callsPerCaller: 300,
  repeats: 1,
};

/** One run's figures. */
export interface Run {
  p50: number;
  p99: number;
  p999: number;
  /** Share of the measured calls each replica served, the odd one last. */
  shares: number[];
  /** How many of them each served. */
  counts: number[];
  failed: number;
  /** Times the client(s) left a replica out (latency outliers and ejections, warm-up included). */
  leftOut: number;
  /** Completed calls per second (throughput runs only). */
  throughput?: number;
}

type Mode = { balance: 'round-robin' | 'least-latency'; excludeUnhealthy: boolean };
const DEFAULT: Mode = { balance: 'round-robin', excludeUnhealthy: true };
const PLAIN: Mode = { balance: 'round-robin', excludeUnhealthy: false };
const LEAST: Mode = { balance: 'least-latency', excludeUnhealthy: true };

const HEALTHY_MS = 2;
const SLOW_MS = 10;

/** Replicas of the "uneven" service on a multicast group of their own, with a client for each mode. */
class Cluster {
  readonly discovery = loopbackMulticast();
  readonly replicas: Child[];

  constructor(delays: number[]) {
    const options = JSON.stringify({
      id: 'uneven',
      replica: true,
      host: '127.0.0.1',
      discovery: this.discovery,
    });
    this.replicas = delays.map((ms) => run('bench/servers/uneven-service.ts', [String(ms), options]));
  }

  async ready(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.next('ready')));
  }

  /** Sends a control line ("delay 2", "fail internal") to replica `i` and waits for its answer. */
  async set(i: number, command: string): Promise<void> {
    const answer = this.replicas[i].next(command.split(' ')[0]);
    this.replicas[i].send(command);
    await answer;
  }

  async served(): Promise<number[]> {
    const lines = this.replicas.map((r) => r.next('served'));
    for (const r of this.replicas) r.send('stats');
    return (await Promise.all(lines)).map((l) => l.served as number);
  }

  async client(mode: Mode): Promise<KableClientProxy> {
    const client = new KableClientProxy({
      host: '127.0.0.1',
      target: 'uneven',
      discovery: this.discovery as never,
      ...mode,
    });
    await client.whenServed('work', { count: this.replicas.length, timeout: 20_000 });
    return client;
  }

  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.stop()));
  }
}

/** A call's time, ms, or -1 if it failed. */
async function call(client: KableClientProxy): Promise<number> {
  const start = performance.now();
  try {
    await firstValueFrom(client.send('work', {}));
    return performance.now() - start;
  } catch {
    return -1;
  }
}

/** Latency-outlier events and ejections so far of these clients. */
function leftOut(clients: KableClientProxy[]): number {
  let count = 0;
  for (const client of clients) {
    const stats = client.node.stats();
    count += (stats['client.latencyOutlierEvents'] ?? 0) + (stats['client.ejections'] ?? 0);
  }
  return count;
}

function figures(times: number[], counts: number[], clients: KableClientProxy[], throughput?: number): Run {
  const ok = times.filter((t) => t >= 0);
  const total = counts.reduce((a, b) => a + b, 0);
  return {
    p50: quantile(ok, 0.5),
    p99: quantile(ok, 0.99),
    p999: quantile(ok, 0.999),
    shares: counts.map((n) => (total === 0 ? 0 : n / total)),
    counts,
    leftOut: leftOut(clients),
    failed: times.length - ok.length,
    ...(throughput === undefined ? {} : { throughput }),
  };
}

function servedSince(before: number[], after: number[]): number[] {
  return after.map((n, i) => n - before[i]);
}

function sharesOf(before: number[], after: number[]): number[] {
  const served = servedSince(before, after);
  const total = served.reduce((a, b) => a + b, 0);
  return served.map((n) => (total === 0 ? 0 : n / total));
}

/** A fresh client in `mode`: `warmUp` sequential calls, then `calls` measured. */
async function sequentialRun(cluster: Cluster, mode: Mode, scale: BalancingScale): Promise<Run> {
  const client = await cluster.client(mode);
  try {
    for (let i = 0; i < scale.warmUp; i++) await call(client);
    const before = await cluster.served();
    const times: number[] = [];
    for (let i = 0; i < scale.calls; i++) times.push(await call(client));
    return figures(times, servedSince(before, await cluster.served()), [client]);
  } finally {
    await client.close();
  }
}

/** A fresh client in `mode` with `lanes` calls in flight: warm-up for `throughputMs`, then measured as long. */
async function throughputRun(cluster: Cluster, mode: Mode, scale: BalancingScale): Promise<Run> {
  const client = await cluster.client(mode);
  try {
    const lanes = async (ms: number, times?: number[]): Promise<void> => {
      const end = performance.now() + ms;
      await Promise.all(
        Array.from({ length: scale.lanes }, async () => {
          while (performance.now() < end) {
            const time = await call(client);
            times?.push(time);
          }
        }),
      );
    };
    await lanes(scale.throughputMs);
    const before = await cluster.served();
    const times: number[] = [];
    const start = performance.now();
    await lanes(scale.throughputMs, times);
    const elapsed = (performance.now() - start) / 1000;
    const throughput = times.filter((t) => t >= 0).length / elapsed;
    return figures(times, servedSince(before, await cluster.served()), [client], throughput);
  } finally {
    await client.close();
  }
}

export interface HealFigures {
  /** Sequential calls until the slow replica was first left out (NaN: never). */
  leftOutAfter: number;
  /** ms from healing to the first 500 ms window in which it served ≥ 25% of the calls (NaN: not in 30 s). */
  backAfter: number;
  /** Its share in that window. */
  share: number;
  run: Run;
}

/**
 * Scenario 3: the slow replica (left out by the default) heals; how long until it serves ≥ 25% of a
 * sequential caller's calls again, in 500 ms windows, at most 30 s.
 */
async function healRun(cluster: Cluster, mode: Mode, scale: BalancingScale): Promise<HealFigures> {
  await cluster.set(2, `delay ${SLOW_MS}`);
  const client = await cluster.client(mode);
  try {
    let leftOutAfter = Number.NaN;
    for (let i = 0; i < scale.warmUp + 2000; i++) {
      await call(client);
      if (Number.isNaN(leftOutAfter) && client.excludedReplicas().length > 0) leftOutAfter = i + 1;
      if (i + 1 >= scale.warmUp && (!mode.excludeUnhealthy || !Number.isNaN(leftOutAfter))) break;
    }
    await cluster.set(2, `delay ${HEALTHY_MS}`);
    const healedAt = performance.now();
    const times: number[] = [];
    const first = await cluster.served();
    let before = first;
    let windowEnd = healedAt + 500;
    let backAfter = Number.NaN;
    let share = 0;
    while (performance.now() - healedAt < 30_000) {
      times.push(await call(client));
      if (performance.now() < windowEnd) continue;
      const now = await cluster.served();
      share = sharesOf(before, now)[2];
      before = now;
      if (share >= 0.25) {
        backAfter = performance.now() - healedAt;
        break;
      }
      windowEnd = performance.now() + 500;
    }
    return {
      leftOutAfter,
      backAfter,
      share,
      run: figures(times, servedSince(first, await cluster.served()), [client]),
    };
  } finally {
    await client.close();
  }
}

export interface FailFigures {
  /** Failed calls of each caller (each failure is a call the failing replica served). */
  failures: number[];
  /** Share of each caller's calls after its 5th failure that still went to the failing replica. */
  shareAfter: number;
  run: Run;
}

/** Scenario 4: replica 3 fails every request fast (an internal error); `callers` sequential clients. */
async function failRun(cluster: Cluster, mode: Mode, scale: BalancingScale): Promise<FailFigures> {
  const clients = await Promise.all(Array.from({ length: scale.callers }, () => cluster.client(mode)));
  try {
    const before = await cluster.served();
    const all: number[] = [];
    let after = 0;
    let failedAfter = 0;
    const failures = await Promise.all(
      clients.map(async (client) => {
        let failed = 0;
        for (let i = 0; i < scale.callsPerCaller; i++) {
          const time = await call(client);
          all.push(time);
          if (failed >= 5) {
            after++;
            if (time < 0) failedAfter++;
          }
          if (time < 0) failed++;
        }
        return failed;
      }),
    );
    return {
      failures,
      shareAfter: after === 0 ? 0 : failedAfter / after,
      run: figures(all, servedSince(before, await cluster.served()), clients),
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

export interface BalancingFigures {
  scale: BalancingScale;
  /** 1: all healthy (default) and one slow with the default (the last pair's), plain round robin, least-latency. */
  slow: { healthy: Run; plain: Run; default: Run; least: Run };
  /** 2: throughput, one slow, plain and default (the last pair's); two healthy replicas alone (the last pair's). */
  concurrent: { plain: Run; default: Run; twoAlone: Run };
  /** 3: healing. */
  heal: { plain: HealFigures; default: HealFigures };
  /** 4: a replica failing fast. */
  failing: { plain: FailFigures; default: FailFigures };
  /**
   * 5: identical replicas, sequential (p50, fairness) and concurrent (throughput), the last of `repeats`
   * pairs; and each pair's ratios, default / plain.
   */
  identical: { plain: Run; default: Run; plainThroughput: Run; defaultThroughput: Run };
  /**
   * Per pair, default / plain (5: throughput, p50), default with one slow / two healthy alone (2), and
   * the default's p99 with one slow / all healthy (1).
   */
  ratios: { throughput: number[]; p50: number[]; concurrent: number[]; p99: number[] };
}

export async function compareBalancing(scale: BalancingScale): Promise<BalancingFigures> {
  // Both clusters live through scenario 2, so that its pairs interleave; idle replicas cost nothing.
  const two = new Cluster([HEALTHY_MS, HEALTHY_MS]);
  const three = new Cluster([HEALTHY_MS, HEALTHY_MS, HEALTHY_MS]);
  try {
    await Promise.all([two.ready(), three.ready()]);
    // 5 first, while all are healthy: identical replicas, pairs interleaved, each pair's order the other
    // way round from the last, so that a drift in the machine's load (or a warmer second run) favours
    // neither mode.
    const ratios = {
      throughput: [] as number[],
      p50: [] as number[],
      concurrent: [] as number[],
      p99: [] as number[],
    };
    let identical: BalancingFigures['identical'] | undefined;
    for (let i = 0; i < scale.repeats; i++) {
      const plainFirst = i % 2 === 0;
      const sequential = await inOrder(
        plainFirst,
        () => sequentialRun(three, PLAIN, scale),
        () => sequentialRun(three, DEFAULT, scale),
      );
      const concurrent = await inOrder(
        plainFirst,
        () => throughputRun(three, PLAIN, scale),
        () => throughputRun(three, DEFAULT, scale),
      );
      identical = {
        plain: sequential[0],
        default: sequential[1],
        plainThroughput: concurrent[0],
        defaultThroughput: concurrent[1],
      };
      ratios.p50.push(identical.default.p50 / identical.plain.p50);
      ratios.throughput.push(identical.defaultThroughput.throughput! / identical.plainThroughput.throughput!);
    }
    // 1: the default with one replica slow against all healthy, pairs interleaved and alternated as in
    // 5 (the odd replica's delay switched between the two runs of a pair; each run a fresh client).
    let healthy: Run | undefined;
    let slowDefault: Run | undefined;
    for (let i = 0; i < scale.repeats; i++) {
      const healthyRun = async () => {
        await three.set(2, `delay ${HEALTHY_MS}`);
        return sequentialRun(three, DEFAULT, scale);
      };
      const slowRun = async () => {
        await three.set(2, `delay ${SLOW_MS}`);
        return sequentialRun(three, DEFAULT, scale);
      };
      [healthy, slowDefault] = await inOrder(i % 2 === 0, healthyRun, slowRun);
      ratios.p99.push(slowDefault.p99 / healthy.p99);
    }
    await three.set(2, `delay ${SLOW_MS}`);
    const slow = {
      healthy: healthy!,
      plain: await sequentialRun(three, PLAIN, scale),
      default: slowDefault!,
      least: await sequentialRun(three, LEAST, scale),
    };
    // 2: the default with one slow replica against the two healthy replicas alone, pairs interleaved
    // and alternated as in 5; plain round robin once.
    let twoAlone: Run | undefined;
    let concurrentDefault: Run | undefined;
    for (let i = 0; i < scale.repeats; i++) {
      [twoAlone, concurrentDefault] = await inOrder(
        i % 2 === 0,
        () => throughputRun(two, DEFAULT, scale),
        () => throughputRun(three, DEFAULT, scale),
      );
      ratios.concurrent.push(concurrentDefault.throughput! / twoAlone.throughput!);
    }
    await two.stop();
    const concurrentSlow = {
      plain: await throughputRun(three, PLAIN, scale),
      default: concurrentDefault!,
    };
    const heal = {
      plain: await healRun(three, PLAIN, scale),
      default: await healRun(three, DEFAULT, scale),
    };
    await three.set(2, `delay ${HEALTHY_MS}`);
    await three.set(2, 'fail internal');
    const failing = {
      plain: await failRun(three, PLAIN, scale),
      default: await failRun(three, DEFAULT, scale),
    };
    return {
      scale,
      slow,
      concurrent: { ...concurrentSlow, twoAlone: twoAlone! },
      heal,
      failing,
      identical: identical!,
      ratios,
    };
  } finally {
    await Promise.all([two.stop(), three.stop()]);
  }
}

/** Runs `a` and `b` one after the other, `a` first when `aFirst`; returns their results as [a, b]. */
async function inOrder<T>(aFirst: boolean, a: () => Promise<T>, b: () => Promise<T>): Promise<[T, T]> {
  if (aFirst) {
    const first = await a();
    return [first, await b()];
  }
  const second = await b();
  return [await a(), second];
}

const fmt = (n: number, digits = 2) => (Number.isNaN(n) ? 'n/a' : n.toFixed(digits));
const pct = (n: number) => `${fmt(n * 100, 1)}%`;
const verdict = (met: boolean) => (met ? 'met' : 'NOT met');

function row(name: string, f: Run): string {
  const throughput = f.throughput === undefined ? '' : ` ${fmt(f.throughput, 0)} |`;
  return `| ${name} | ${fmt(f.p50)} | ${fmt(f.p99)} | ${fmt(f.p999)} | ${f.shares.map(pct).join(' / ')} | ${f.failed} | ${f.leftOut} |${throughput}`;
}

export function balancingTable(f: BalancingFigures): string[] {
  const { scale, slow, concurrent, heal, failing, identical, ratios } = f;
  const head = '| p50 ms | p99 ms | p99.9 ms | shares (odd one last) | failed | times left out |';
  const rule = '| --- | ---: | ---: | ---: | --- | ---: | ---: |';
  const fairness = identical.default.counts;
  const fair = Math.max(...fairness) - Math.min(...fairness) <= 1;
  const ratio = (a: number, b: number) => a / b;
  const p99Ratio = median(ratios.p99);
  const throughputRatio = median(ratios.throughput);
  const p50Ratio = median(ratios.p50);
  const concurrentRatio = median(ratios.concurrent);
  const list = (values: number[]) => values.map((v) => fmt(v, 3)).join(', ');
  return [
    `Balancing (issue 32): three replica processes of a ${HEALTHY_MS} ms handler, the odd one ${SLOW_MS} ms or failing;`,
    `"plain" is round robin without exclusion (excludeUnhealthy: false), "default" the default (round robin`,
    `leaving out slow and failing replicas). Sequential runs: ${scale.calls} calls after ${scale.warmUp}; concurrent runs: ${scale.lanes}`,
    `calls in flight for ${scale.throughputMs / 1000} s after as long. Scenarios 1 (default), 2 and 5 run ${scale.repeats} interleaved pairs, each pair's`,
    'order the other way round from the last; their tables show the last pair.',
    '',
    `| 1. one replica 5x slower, sequential ${head}`,
    rule,
    row('all healthy, default', slow.healthy),
    row('plain', slow.plain),
    row('default', slow.default),
    row("balance: 'least-latency'", slow.least),
    '',
    `| 2. one replica 5x slower, ${scale.lanes} in flight ${head} throughput /s |`,
    `${rule} ---: |`,
    row('plain', concurrent.plain),
    row('default', concurrent.default),
    row('two healthy replicas alone', concurrent.twoAlone),
    '',
    `| 5. identical replicas ${head} throughput /s |`,
    `${rule} ---: |`,
    row('plain, sequential', identical.plain),
    row('default, sequential', identical.default),
    row(`plain, ${scale.lanes} in flight`, identical.plainThroughput),
    row(`default, ${scale.lanes} in flight`, identical.defaultThroughput),
    '',
    `| 3. the slow replica heals | left out after (calls) | back to ≥ 25% after | its share then | p50 / p99 ms while healing |`,
    '| --- | ---: | ---: | ---: | --- |',
    `| plain | never left out | ${fmt(heal.plain.backAfter, 0)} ms | ${pct(heal.plain.share)} | ${fmt(heal.plain.run.p50)} / ${fmt(heal.plain.run.p99)} |`,
    `| default | ${fmt(heal.default.leftOutAfter, 0)} | ${fmt(heal.default.backAfter, 0)} ms | ${pct(heal.default.share)} | ${fmt(heal.default.run.p50)} / ${fmt(heal.default.run.p99)} |`,
    '',
    `| 4. one replica fails every request fast, ${scale.callers} callers x ${scale.callsPerCaller} | failures per caller | its share after a caller's 5th failure | shares | p50 / p99 ms |`,
    '| --- | --- | ---: | --- | --- |',
    `| plain | ${failing.plain.failures.join(', ')} | ${pct(failing.plain.shareAfter)} | ${failing.plain.run.shares.map(pct).join(' / ')} | ${fmt(failing.plain.run.p50)} / ${fmt(failing.plain.run.p99)} |`,
    `| default | ${failing.default.failures.join(', ')} | ${pct(failing.default.shareAfter)} | ${failing.default.run.shares.map(pct).join(' / ')} | ${fmt(failing.default.run.p50)} / ${fmt(failing.default.run.p99)} |`,
    '',
    'Against the issue:',
    '',
    `- 1: slow replica's share ${pct(slow.default.shares[2])} (≤ 1%: ${verdict(slow.default.shares[2] <= 0.01)}); p99 ${fmt(p99Ratio, 3)}x the all-healthy p99, median of ${ratios.p99.length} interleaved pairs (per pair: ${list(ratios.p99)}) (≤ 1.3x: ${verdict(p99Ratio <= 1.3)}); plain: ${pct(slow.plain.shares[2])}, ${fmt(ratio(slow.plain.p99, slow.healthy.p99))}x (last pair's all-healthy p99).`,
    `- 2: throughput ${fmt(concurrentRatio, 3)}x that of the two healthy replicas alone, median of ${ratios.concurrent.length} interleaved pairs (per pair: ${list(ratios.concurrent)}; last pair ${fmt(concurrent.default.throughput!, 0)}/s against ${fmt(concurrent.twoAlone.throughput!, 0)}/s) (≥: ${verdict(concurrentRatio >= 1)}); plain ${fmt(concurrent.plain.throughput!, 0)}/s.`,
    `- 3: back to ${pct(heal.default.share)} of the calls ${fmt(heal.default.backAfter / 1000, 1)} s after healing (≥ 25% within 30 s: ${verdict(heal.default.backAfter <= 30_000)}).`,
    `- 4: at most ${Math.max(...failing.default.failures)} failures per caller (≤ 5: ${verdict(Math.max(...failing.default.failures) <= 5)}), then ${pct(failing.default.shareAfter)} of the traffic (≤ 1%: ${verdict(failing.default.shareAfter <= 0.01)}); plain: ${pct(failing.plain.shareAfter)}.`,
    `- 5: throughput ${fmt(throughputRatio, 3)}x and p50 ${fmt(p50Ratio, 3)}x plain round robin, median of ${ratios.p50.length} interleaved pairs (per pair: ${list(ratios.throughput)}; ${list(ratios.p50)}) (within 3%: ${verdict(Math.abs(throughputRatio - 1) <= 0.03 && Math.abs(p50Ratio - 1) <= 0.03)}; a p50 under 1 is the default answering faster); default shares ${fairness.join(' / ')} of ${scale.calls} (exact, ± 1: ${verdict(fair)}).`,
  ];
}
