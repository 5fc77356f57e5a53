// Key affinity (issue 33): which keys move when replicas come and go (pure computation), then four `math`
// replicas as processes and one caller with 64 requests in flight: Zipf(1.1) keys against the load bound
// and their home replicas, and small-request throughput with a key against round robin, in the same run.
// Part of `npm run bench`; on its own: node --import ./scripts/register-ts.js bench/affinity.ts [calls]
import { firstValueFrom } from 'rxjs';
import type { PeerLanes } from '../lib/data-plane/peer-lanes.js';
import { KableClientProxy } from '../lib/nest/kable.client.js';
import { KableRecord } from '../lib/nest/kable-record.js';
import type { PeerRecord } from '../lib/node/peer-record.js';
import { Rendezvous, addressHash, identityHash, keyHash } from '../lib/node/rendezvous.js';
import { seededRandom, zipf } from '../test/support/zipf.js';
import { loopbackMulticast, median, quantile, run } from './support.js';

const LANES = 64;
const REPLICAS = 4;
const HOT = 10;
/**
 * Calls per throughput round and kind. A round of 50,000 (1 s) let the machine's load swing the per-round
 * ratio by more than 5%; many short rounds, interleaved, spread such swings over all three kinds.
 */
const THROUGHPUT_ROUND = 10_000;

export interface ZipfFigures {
  /** Most requests in flight from the caller to one replica, right after a keyed send. */
  maxInFlight: number;
  /** Share of calls for keys outside the 10 hottest that reached their home replica. */
  coldAtHome: number;
  /** Share of the hottest key's calls that reached its home replica. */
  hottestAtHome: number;
  /** Counted passes, and the lowest and highest share of non-hot calls at home in one of them. */
  passes: number;
  passRange: [number, number];
}

export interface AffinityFigures extends ZipfFigures {
  keys: number;
  /** Share of keys that moved from 10 replicas to 11, and from 10 to 9 (one removed). */
  movedOnJoin: number;
  movedOnLeave: number;
  /** Keys that moved on the removal although their replica stayed (0 is the design). */
  movedFromOthers: number;
  /** Keys two callers (replicas known in another order) placed apart. */
  disagreements: number;
  calls: number;
  /** ⌈1.25 × mean⌉ + 1 with 64 in flight over the replicas. */
  bound: number;
  /** The same Zipf figures from a client with affinityRecheck: false. */
  atOnce: ZipfFigures;
  /**
   * Requests per second over all the interleaved rounds (their calls over their summed time): no key,
   * keyed, keyed with affinityRecheck: false.
   */
  roundRobin: number;
  keyed: number;
  keyedAtOnce: number;
  /** Those rates' ratios to round robin: keyed (default), keyed with affinityRecheck: false. */
  ratio: number;
  ratioAtOnce: number;
  /** The per-round ratios keyed / round robin (one round each, run back to back): quartiles and median. */
  roundRatios: [number, number, number];
  rounds: number;
  roundCalls: number;
}

/** Key movement over 100,000 keys: pure computation, no network. */
function movement(
  keys: number,
): Pick<AffinityFigures, 'movedOnJoin' | 'movedOnLeave' | 'movedFromOthers' | 'disagreements'> {
  const replicas = Array.from({ length: 11 }, (_, i) => ({ host: `127.0.1.${i + 1}`, port: 4000 }));
  const hashed = Array.from({ length: keys }, (_, i) => keyHash(`customer-${i}`));
  const place = (set: typeof replicas) => {
    const rendezvous = new Rendezvous<(typeof replicas)[number]>(
      (r) => identityHash(r.host, r.port),
      () => 0,
    );
    return hashed.map((key) => rendezvous.select(set, key)!.host);
  };
  const ten = place(replicas.slice(0, 10));
  const eleven = place(replicas);
  const gone = replicas[3].host;
  const nine = place(replicas.slice(0, 10).filter((r) => r.host !== gone));
  const reversed = place(replicas.slice(0, 10).reverse());
  let joined = 0;
  let left = 0;
  let fromOthers = 0;
  let disagreements = 0;
  for (let i = 0; i < keys; i++) {
    if (eleven[i] !== ten[i]) joined++;
    if (nine[i] !== ten[i]) {
      left++;
      if (ten[i] !== gone) fromOthers++;
    }
    if (reversed[i] !== ten[i]) disagreements++;
  }
  return {
    movedOnJoin: joined / keys,
    movedOnLeave: left / keys,
    movedFromOthers: fromOthers,
    disagreements,
  };
}

/**
 * Where Zipf(1.1) keys went from one client, over passes of `calls` each (see `affinityFigures`): `pass`
 * runs one, counted or not (a warm-up), and returns its share of non-hot calls at home; `figures` sums
 * the counted ones.
 */
function zipfCounter(client: KableClientProxy, nodes: PeerRecord[], names: string[], homes: string[]) {
  const pool = (client as unknown as { pool: PeerLanes }).pool;
  const next = zipf(names.length, 1.1, seededRandom(11));
  let maxInFlight = 0;
  let cold = 0;
  let coldHome = 0;
  let hottest = 0;
  let hottestHome = 0;
  const shares: number[] = [];
  // Every request is sent through pool.get (a keyed one that waited for the end of a turn too, in an
  // immediate): read every replica's count from this caller once that send is done.
  const sample = () => {
    for (const node of nodes) maxInFlight = Math.max(maxInFlight, pool.inFlight(node.iid));
  };
  const pass = async (calls: number, counting: boolean): Promise<void> => {
    const get = pool.get.bind(pool);
    pool.get = (peer, bulk) => {
      if (counting) queueMicrotask(sample);
      return get(peer, bulk);
    };
    let sent = 0;
    let passCold = 0;
    let passColdHome = 0;
    const lane = async () => {
      while (sent < calls) {
        sent++;
        const rank = next();
        const iid = await firstValueFrom(
          client.send<string>('who', new KableRecord({}, { affinityKey: names[rank] })),
        );
        if (!counting) continue;
        if (rank === 0) {
          hottest++;
          if (iid === homes[rank]) hottestHome++;
        } else if (rank >= HOT) {
          passCold++;
          if (iid === homes[rank]) passColdHome++;
        }
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
    pool.get = get;
    if (!counting) return;
    cold += passCold;
    coldHome += passColdHome;
    shares.push(passColdHome / passCold);
  };
  const figures = (): ZipfFigures => ({
    maxInFlight,
    coldAtHome: coldHome / cold,
    hottestAtHome: hottest === 0 ? Number.NaN : hottestHome / hottest,
    passes: shares.length,
    passRange: [Math.min(...shares), Math.max(...shares)],
  });
  return { pass, figures };
}

export async function affinityFigures(calls: number, rounds: number): Promise<AffinityFigures> {
  const keys = 100_000;
  const moves = movement(keys);
  const discovery = loopbackMulticast();
  const options = JSON.stringify({ id: 'math', replica: true, host: '127.0.0.1', discovery });
  const replicas = Array.from({ length: REPLICAS }, () =>
    run('test/nest/fixtures/run-service.ts', ['math', options]),
  );
  await Promise.all(replicas.map((r) => r.next('ready')));
  const settings = { host: '127.0.0.1', target: 'math', discovery: discovery as never };
  // The default client, and one with affinityRecheck: false (keyed requests pass on at once).
  const client = new KableClientProxy(settings);
  const atOnce = new KableClientProxy({ ...settings, affinityRecheck: false });
  try {
    const nodes = (await client.whenServed('who', { count: REPLICAS, timeout: 20_000 })) as PeerRecord[];
    await atOnce.whenServed('who', { count: REPLICAS, timeout: 20_000 });
    const names = Array.from({ length: 10_000 }, (_, rank) => `customer-${rank}`);
    const home = new Rendezvous<PeerRecord>(addressHash, () => 0);
    const homes = names.map((name) => home.select(nodes, keyHash(name))!.iid);
    // Zipf passes: a warm-up of each client, then `rounds` counted passes of each, interleaved (the
    // machine's load moved one pass's share by a few points).
    const zipfDefault = zipfCounter(client, nodes, names, homes);
    const zipfAtOnce = zipfCounter(atOnce, nodes, names, homes);
    await zipfDefault.pass(calls, false);
    await zipfAtOnce.pass(calls, false);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [zipfDefault, zipfAtOnce] : [zipfAtOnce, zipfDefault];
      for (const counter of order) await counter.pass(calls, true);
    }

    // Throughput: uniform keys (each client) against no key, many short interleaved rounds on the same
    // replicas. Every round draws a key and makes a KableRecord, with the key or without it (round
    // robin), so the kinds differ in the routing alone.
    const random = seededRandom(5);
    const throughput = async (from: KableClientProxy, keyed: boolean, count: number): Promise<number> => {
      let left = count;
      const started = performance.now();
      const one = async () => {
        while (left-- > 0) {
          const name = names[Math.floor(random() * names.length)];
          await firstValueFrom(from.send('who', new KableRecord({}, keyed ? { affinityKey: name } : {})));
        }
      };
      await Promise.all(Array.from({ length: LANES }, one));
      return (performance.now() - started) / 1000;
    };
    const runs = [
      (count: number) => throughput(client, false, count),
      (count: number) => throughput(client, true, count),
      (count: number) => throughput(atOnce, true, count),
    ];
    const perRound = Math.min(calls, THROUGHPUT_ROUND);
    const throughputRounds = Math.max(1, Math.round((calls * rounds) / perRound));
    for (const warm of runs) await warm(perRound);
    const seconds = [0, 0, 0];
    const ratios: number[][] = [[], []];
    for (let r = 0; r < throughputRounds; r++) {
      // Each round starts with another of the three, so a drift in the machine's load favours none.
      const round: number[] = [];
      for (let i = 0; i < runs.length; i++) {
        const which = (r + i) % runs.length;
        round[which] = await runs[which](perRound);
        seconds[which] += round[which];
      }
      ratios[0].push(round[0] / round[1]);
      ratios[1].push(round[0] / round[2]);
    }
    const rate = (which: number) => (perRound * throughputRounds) / seconds[which];
    return {
      keys,
      ...moves,
      calls,
      bound: Math.ceil((1.25 * LANES) / REPLICAS) + 1,
      ...zipfDefault.figures(),
      atOnce: zipfAtOnce.figures(),
      roundRobin: rate(0),
      keyed: rate(1),
      keyedAtOnce: rate(2),
      ratio: rate(1) / rate(0),
      ratioAtOnce: rate(2) / rate(0),
      roundRatios: [quantile(ratios[0], 0.25), median(ratios[0]), quantile(ratios[0], 0.75)],
      rounds: throughputRounds,
      roundCalls: perRound,
    };
  } finally {
    await Promise.all([client.close(), atOnce.close()]);
    await Promise.all(replicas.map((r) => r.stop()));
  }
}

const pct = (n: number) => `${(n * 100).toFixed(1)}%`;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function affinityTable(f: AffinityFigures): string[] {
  return [
    `| key affinity (rendezvous hashing, load bound ⌈1.25 × mean⌉) | value | target |`,
    '| --- | ---: | ---: |',
    `| keys moved from 10 to 11 replicas (${fmt(f.keys)} keys) | ${pct(f.movedOnJoin)} | ≤ 11% |`,
    `| keys moved when 1 of 10 leaves / of them from replicas that stayed | ${pct(f.movedOnLeave)} / ${fmt(f.movedFromOthers)} | ≤ 10.5% / 0 |`,
    `| keys two callers placed apart (replicas known in another order) | ${fmt(f.disagreements)} | 0 |`,
    `| Zipf(1.1) keys, ${LANES} in flight over ${REPLICAS} replicas (${f.passes} passes of ${fmt(f.calls)} calls): most in flight at one replica / ⌈1.25 × mean⌉ + 1 | ${fmt(f.maxInFlight)} / ${fmt(f.bound)} | ≤ bound |`,
    `| same: calls for keys outside the ${HOT} hottest that reached their home replica (one pass: ${pct(f.passRange[0])}–${pct(f.passRange[1])}) | ${pct(f.coldAtHome)} | ≥ 90% |`,
    `| same: calls for the hottest key that reached its home replica | ${pct(f.hottestAtHome)} | |`,
    `| same, \`affinityRecheck: false\`: most in flight / keys outside the ${HOT} hottest at home / hottest at home | ${fmt(f.atOnce.maxInFlight)} / ${pct(f.atOnce.coldAtHome)} / ${pct(f.atOnce.hottestAtHome)} | |`,
    `| small requests (\`who\`), ${LANES} in flight over ${REPLICAS} replicas: with a key / round robin, req/s (${f.rounds} interleaved rounds of ${fmt(f.roundCalls)} calls each) | ${fmt(f.keyed)} / ${fmt(f.roundRobin)} | |`,
    `| same: ratio of those rates (per-round ratios: median ${fmt(f.roundRatios[1], 2)}, quartiles ${fmt(f.roundRatios[0], 2)}–${fmt(f.roundRatios[2], 2)}) | ${fmt(f.ratio, 2)} | ≥ 0.95 |`,
    `| same, \`affinityRecheck: false\`: req/s / ratio | ${fmt(f.keyedAtOnce)} / ${fmt(f.ratioAtOnce, 2)} | |`,
    '',
    'Key affinity (bench/affinity.ts): the movement rows place 100,000 keys over replicas 127.0.1.1-11:4000',
    'by computation alone. The others run four `math` replicas as processes (test/nest/fixtures/run-service.ts)',
    `and one client in the bench process, ${LANES} lanes each sending \`who\` (it answers with the replica's`,
    'instance id) and the next one on its reply. Zipf(1.1) over 10,000 keys, seeded; a first pass of each',
    "client warms up and is not counted, then the two clients' counted passes alternate, and the shares are",
    "over all of them (one pass's share moved by a few points with the machine's load). In flight is the",
    "client's own count per replica, read after each send (also those a keyed request makes at the end of a",
    "turn), the most over all the passes. A key's home is its replica with no load. The",
    'throughput rounds use uniform keys: every call draws a key and makes a new KableRecord, with the key or',
    'without it (round robin), so the kinds differ in the routing alone. Each round runs round robin, keyed',
    'and keyed with `affinityRecheck: false` (a second client), starting with another of the three each round,',
    "after one warm-up round of each. A rate is all its rounds' calls over their summed time; rounds of",
    "50,000 calls (1 s) let the per-round ratio swing by more than 5% with the machine's load (the quartiles",
    'of the per-round ratios show how much it still does).',
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const calls = Number(process.argv[2] ?? 20_000);
  const figures = await affinityFigures(calls, Number(process.argv[3] ?? 5));
  process.stdout.write(affinityTable(figures).join('\n') + '\n');
  process.exit(0);
}
