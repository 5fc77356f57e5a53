// npm run bench [-- --smoke]: Kable against Nest's TCP and NATS transports, Moleculer's TCP transporter and a
// raw socket, plus Kable's own figures.
// Results go to docs/benchmarks.md (skipped in --smoke, which only checks that everything still runs).
// npm run bench -- --only=freeze: only the frozen-replica rows, printed (docs/benchmarks.md is left alone).
// npm run bench -- --only=balancing [--smoke]: only the balancing scenarios (bench/balancing.ts), printed.
// npm run bench -- --record=payloads,affinity,balancing: those sections measured again and rewritten in
// docs/benchmarks.md (between their markers), the rest left as the last full run wrote it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { affinityFigures, affinityTable } from './affinity.js';
import { convergence, pickRate, propagation, sealRate } from './cluster.js';
import { firstReplyAfterStart } from './join.js';
import { freezeImpact, type FreezeFigures } from './freeze.js';
import { killDetection } from './kill.js';
import { balancingTable, compareBalancing, FULL_SCALE, SMOKE_SCALE } from './balancing.js';
import { comparePayloads, HEAD_OF_LINE_RUNS, headOfLine, headOfLineTable, payloadTable } from './payloads.js';
import { compareStreams, streamTable } from './streams.js';
import {
  PAYLOAD_NOTES,
  READING_NOTES,
  SMALL_REQUEST_NOTES,
  STREAM_NOTES,
  STRING_NOTES,
} from './report-notes.js';
import { compareStrings, stringTable } from './strings.js';
import { compareTelemetry, telemetryTable } from './telemetry.js';
import { median, stealMeter } from './support.js';
import { compareTransports, KINDS } from './transport.js';

const smoke = process.argv.includes('--smoke');
// Seven interleaved runs of 60,000 requests: fewer let one noisy moment on a shared VM decide the median.
const repeats = smoke ? 1 : 7;
const requests = smoke ? 2000 : 60_000;

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const freezeRows = (withProbe: FreezeFigures, without: FreezeFigures, stolen: number) => [
  '| frozen replica (SIGSTOP 8 s; 3 replicas, 20 lanes, default timings) | liveness on (default) | liveness off (reference) |',
  '| --- | ---: | ---: |',
  `| time from freeze to the last request routed to the frozen replica (0: none after the freeze) | ${fmt(withProbe.lastRoutedAfter)} ms | ${fmt(without.lastRoutedAfter)} ms |`,
  `| requests sent to the frozen replica during the freeze | ${fmt(withProbe.routedAfter)} | ${fmt(without.routedAfter)} |`,
  `| requests that timed out (5 s timeout) | ${fmt(withProbe.timedOut)} | ${fmt(without.timedOut)} |`,
  `| caller throughput during the freeze / before | ${fmt(withProbe.throughputRatio, 2)} (${fmt(withProbe.during)} / ${fmt(withProbe.before)} req/s) | ${fmt(without.throughputRatio, 2)} (${fmt(without.during)} / ${fmt(without.before)} req/s) |`,
  '',
  `Steal during these runs: ${Number.isNaN(stolen) ? 'unknown' : `${fmt(stolen * 100)}%`}.`,
];

if (process.argv.includes('--only=freeze')) {
  const stealing = stealMeter();
  const withProbe = await freezeImpact(true);
  const without = await freezeImpact(false);
  process.stdout.write(freezeRows(withProbe, without, stealing()).join('\n') + '\n');
  process.exit(0);
}

if (process.argv.includes('--only=balancing')) {
  const balancing = await compareBalancing(smoke ? SMOKE_SCALE : FULL_SCALE);
  process.stdout.write(balancingTable(balancing).join('\n') + '\n');
  process.exit(0);
}

/** A section of docs/benchmarks.md between markers, so that `--record=` can measure it again alone. */
const section = (name: string, body: string[]): string[] => [
  `<!-- bench:${name} -->`,
  '',
  ...body,
  '',
  `<!-- /bench:${name} -->`,
];
const recordedOn = (): string =>
  `Recorded on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}; load average at the end: ${loadavg()
    .map((l) => fmt(l, 1))
    .join(' / ')}.`;

// npm run bench -- --record=payloads,affinity,balancing: measures only those sections and rewrites each
// between its markers in docs/benchmarks.md, the rest of the file as it was (a full run takes long).
const recordArg = process.argv.find((arg) => arg.startsWith('--record='));
if (recordArg !== undefined) {
  const wanted = recordArg.slice('--record='.length).split(',');
  const known = ['payloads', 'affinity', 'balancing'];
  const unknown = wanted.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`--record= takes ${known.join(', ')}; not ${unknown.join(', ')}`);
  let doc = readFileSync('docs/benchmarks.md', 'utf8');
  for (const name of wanted) {
    const stolen = stealMeter();
    const body = await measureSection(name);
    const replacement = section(name, [...body, '', `${recordedOn()} Steal: ${fmtSteal(stolen())}.`]).join(
      '\n',
    );
    const start = doc.indexOf(`<!-- bench:${name} -->`);
    const end = doc.indexOf(`<!-- /bench:${name} -->`);
    if (start < 0 || end < start) throw new Error(`docs/benchmarks.md has no markers for "${name}"`);
    doc = doc.slice(0, start) + replacement + doc.slice(end + `<!-- /bench:${name} -->`.length);
    process.stdout.write(replacement + '\n');
    if (!smoke) writeFileSync('docs/benchmarks.md', doc);
  }
  process.exit(0);
}

async function measureSection(name: string): Promise<string[]> {
  if (name === 'payloads') {
    const repeats = smoke ? 1 : 5;
    const measured = await comparePayloads(repeats, smoke ? 8 * 1024 * 1024 : 256 * 1024 * 1024);
    const blocked = await headOfLine(smoke ? 200 : 2000, smoke ? 1 : HEAD_OF_LINE_RUNS);
    return [...payloadTable(measured, repeats), '', ...PAYLOAD_NOTES, '', ...headOfLineTable(blocked)];
  }
  if (name === 'affinity') return affinityTable(await affinityFigures(smoke ? 2000 : 50_000, smoke ? 1 : 7));
  return balancingTable(await compareBalancing(smoke ? SMOKE_SCALE : FULL_SCALE));
}

function fmtSteal(stolen: number): string {
  return Number.isNaN(stolen) ? 'unknown' : `${fmt(stolen * 100)}%`;
}

const steal = stealMeter();
const transports = await compareTransports(repeats, requests);
const stolen = steal();
/** The pairs ran on a core per process: only then is an unpinned repeat measured beside them. */
const pinned = transports.unpinned !== undefined;
// Large binary payloads: 256 MiB moved per size and run (smoke: 8 MiB, just to see it work).
const payloadRepeats = smoke ? 1 : 5;
const payloadSteal = stealMeter();
const payloads = await comparePayloads(payloadRepeats, smoke ? 8 * 1024 * 1024 : 256 * 1024 * 1024);
// 2,000 small requests alone, then 2,000 more beside 8 MiB uploads (smoke: 200), in fresh processes each run.
const blocking = await headOfLine(smoke ? 200 : 2000, smoke ? 1 : HEAD_OF_LINE_RUNS);
// Large strings: 64 MiB of UTF-8 per shape and run (smoke: 8 MiB).
const strings = await compareStrings(payloadRepeats, smoke ? 8 * 1024 * 1024 : 64 * 1024 * 1024, smoke);
const streamRepeats = smoke ? 1 : 5;
const streams = await compareStreams(streamRepeats, smoke);
const payloadStolen = payloadSteal();
// Kable with and without OpenTelemetry (see bench/telemetry.ts), five runs: CPU per request is the
// steadier figure on a shared machine.
const telemetry = await compareTelemetry(smoke ? 1 : 5, smoke ? 2000 : 30_000);
// Key affinity: key movement, Zipf keys against the load bound, throughput with a key / round robin.
const affinity = await affinityFigures(smoke ? 2000 : 50_000, smoke ? 1 : 7);
const picks = await pickRate(smoke ? 100_000 : 5_000_000);
const seals = sealRate(smoke ? 1000 : 50_000);
const interval = 1000;
const converge: Record<number, number> = {};
for (const count of smoke ? [5] : [20, 50, 100]) converge[count] = await convergence(count, interval);
// 200 rounds, so that p99 is not simply the one slowest round (a VM stall).
const propagate = await propagation(smoke ? 5 : 50, smoke ? 4 : 200);
const kill = await killDetection(1000);
const joins = await firstReplyAfterStart(smoke ? 3 : 40);
const freezeSteal = stealMeter();
const frozen = smoke ? undefined : [await freezeImpact(true), await freezeImpact(false)];
const frozenStolen = freezeSteal();
const balancingSteal = stealMeter();
const balancing = await compareBalancing(smoke ? SMOKE_SCALE : FULL_SCALE);
const balancingStolen = balancingSteal();

const lines = [
  '# Benchmarks',
  '',
  `Run on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}.`,
  `Each configuration is a fresh server and client process pair on loopback, ${repeats} runs interleaved,`,
  `${fmt(requests)} requests of \`sum\` over 8 numbers with 100 in flight, then sequential latency. Medians shown;`,
  'ratios are taken pair by pair within each run, then the median. This machine is noisy: read the ratios.',
  pinned
    ? 'Each server ran on core 0 and its client on core 1 (`taskset`), as two hosts would have a core each; the'
    : 'The pairs ran unpinned (BENCH_PIN=0, one core, or no `taskset`): the scheduler placed the processes.',
  ...(pinned
    ? ['last rows below repeat Kable / raw corked with both pairs left to the scheduler (see the notes).']
    : []),
  `While these ran, the hypervisor took ${Number.isNaN(stolen) ? 'an unknown share' : `${fmt(stolen * 100)}%`} of the CPU time for other guests (steal, /proc/stat).`,
  '',
  ...READING_NOTES,
  '',
  '| transport | throughput (req/s) | p50 (ms) | p99 (ms) | server CPU per request (µs) | client CPU per request (µs) |',
  '| --- | ---: | ---: | ---: | ---: | ---: |',
  ...KINDS.map((kind) => {
    const m = transports.medians[kind];
    return `| ${kind} | ${fmt(m.throughput)} | ${fmt(m.p50, 3)} | ${fmt(m.p99, 3)} | ${fmt(m.cpuPerRequest, 1)} | ${fmt(m.clientCpuPerRequest, 1)} |`;
  }),
  '',
  '| ratio (median of per-run ratios) | value | target |',
  '| --- | ---: | ---: |',
  `| Kable / Nest TCP throughput | ${fmt(transports.ratios.throughputVsNest, 2)} | ≥ 1.5 |`,
  `| Kable / raw socket throughput | ${fmt(transports.ratios.throughputVsRaw, 2)} | ≥ 0.75 |`,
  `| Kable / raw socket corked per tick (both ends), throughput | ${fmt(transports.ratios.throughputVsCorked, 2)} | ≥ 1 |`,
  `| Kable / raw socket corked per tick (both ends), sequential p50 | ${fmt(transports.ratios.p50VsCorked, 2)} | ≤ 1.15 |`,
  `| Kable / Nest TCP p50 latency | ${fmt(transports.ratios.p50VsNest, 2)} | ≤ 1 |`,
  `| Kable / Nest TCP server CPU per request | ${fmt(transports.ratios.cpuVsNest, 2)} | |`,
  `| Kable / Nest TCP client CPU per request | ${fmt(transports.ratios.clientCpuVsNest, 2)} | |`,
  `| Kable with a key (TLS 1.3 PSK) / Kable plain, throughput | ${fmt(transports.ratios.tlsVsPlain, 2)} | |`,
  `| Kable / Moleculer TCP throughput | ${fmt(transports.ratios.throughputVsMoleculer, 2)} | |`,
  `| Kable / Moleculer TCP p50 latency | ${fmt(transports.ratios.p50VsMoleculer, 2)} | |`,
  `| Kable / Nest NATS (queue group) throughput | ${fmt(transports.ratios.throughputVsNats, 2)} | |`,
  `| Kable / Nest NATS (queue group) p50 latency | ${fmt(transports.ratios.p50VsNats, 2)} | |`,
  '',
  `Per run, Kable / Nest TCP throughput: ${transports.perRun.throughputVsNest.map((r) => fmt(r, 2)).join(', ')};`,
  `Kable / raw: ${transports.perRun.throughputVsRaw.map((r) => fmt(r, 2)).join(', ')};`,
  `Kable / raw corked, throughput: ${transports.perRun.throughputVsCorked.map((r) => fmt(r, 2)).join(', ')};`,
  `Kable / raw corked, p50: ${transports.perRun.p50VsCorked.map((r) => fmt(r, 2)).join(', ')};`,
  `Kable / Moleculer TCP throughput: ${transports.perRun.throughputVsMoleculer.map((r) => fmt(r, 2)).join(', ')};`,
  `Kable / Nest NATS throughput: ${transports.perRun.throughputVsNats.map((r) => fmt(r, 2)).join(', ')}.`,
  '',
  ...(transports.unpinned === undefined
    ? []
    : [
        '| unpinned (one more pair of each per run, placed by the scheduler) | median | per run |',
        '| --- | ---: | --- |',
        `| Kable / raw corked, throughput | ${fmt(median(transports.unpinned.throughput), 2)} | ${transports.unpinned.throughput.map((r) => fmt(r, 2)).join(', ')} |`,
        `| Kable / raw corked, sequential p50 | ${fmt(median(transports.unpinned.p50), 2)} | ${transports.unpinned.p50.map((r) => fmt(r, 2)).join(', ')} |`,
        '',
      ]),
  ...SMALL_REQUEST_NOTES,
  '',
  "Peers a user would pick instead (bench/peers/). `moleculer-tcp`: Moleculer 0.15.2's TCP transporter, a",
  "`math` service with a `sum` action on one node and a second node calling `math.sum`, with Moleculer's own",
  'gossip discovery and round-robin balancing and no message broker. UDP discovery is off: the caller knows',
  'the server from a static peer list (`127.0.0.1:PORT/nodeID`), and both nodes listen on and advertise',
  "127.0.0.1 only. Moleculer's default JSON serializer (its MessagePack serializers need an extra package);",
  "logger, metrics and tracing off. `nest-nats`: Nest's NATS transport, the server subscribed in the queue",
  "group `math` (`Transport.NATS`, `queue: 'math'`), the caller a `ClientNats` (client library",
  "@nats-io/transport-node 3.4.0, the one Nest 12 loads), Nest's default JSON serialization, through a",
  'nats-server broker (Debian package) that the bench starts for each pair on 127.0.0.1 at a random port,',
  'with no cluster and no monitoring port, and stops afterwards: each request and reply crosses the broker,',
  'whose CPU time the server CPU column leaves out.',
  '',
  ...section('payloads', [
    ...payloadTable(payloads, payloadRepeats),
    '',
    ...PAYLOAD_NOTES,
    '',
    ...headOfLineTable(blocking),
  ]),
  '',
  ...stringTable(strings, payloadRepeats),
  '',
  ...STRING_NOTES,
  '',
  `Steal while the payload, string and stream rows ran: ${Number.isNaN(payloadStolen) ? 'unknown' : `${fmt(payloadStolen * 100)}%`}; load average at the end: ${loadavg()
    .map((l) => fmt(l, 1))
    .join(' / ')}.`,
  '',
  ...streamTable(streams, streamRepeats),
  '',
  ...STREAM_NOTES,
  '',
  ...telemetryTable(telemetry),
  '',
  ...section('affinity', affinityTable(affinity)),
  '',
  '| Kable figure | value | target |',
  '| --- | ---: | ---: |',
  `| pick() per second | ${fmt(picks)} | ≥ 5,000,000 |`,
  `| advert seal + open per second | ${fmt(seals)} | |`,
  ...Object.entries(converge).map(
    ([count, ms]) =>
      `| convergence of ${count} nodes (advertiseInterval ${interval} ms) | ${fmt(ms)} ms | ≤ ${interval} ms |`,
  ),
  `| state change seen by all of ${smoke ? 5 : 50} nodes, p50 / p99 | ${fmt(propagate.p50, 1)} / ${fmt(propagate.p99, 1)} ms | p99 ≤ 20 ms |`,
  `| client stops routing to a SIGKILLed replica, with traffic | ${fmt(kill.withTraffic, 1)} ms | |`,
  `| same, without traffic (eviction; nodeTimeout 3500 ms) | ${fmt(kill.withoutTraffic)} ms | |`,
  ...Object.entries(joins).map(
    ([mode, r]) =>
      `| first reply after start, fresh caller, ${mode}, p50 / p99 of ${r.runs} (every replica known: p50 ${fmt(r.allKnown, 1)} ms; a client whose node knows the cluster: p50 ${fmt(r.known, 1)} ms, ratio ${fmt(r.ratio, 2)}) | ${fmt(r.p50, 1)} / ${fmt(r.p99, 1)} ms | p99 < 150 ms |`,
  ),
  '',
  'First reply after start: three replicas with the default timings (advertiseInterval 3000 ms), then fresh',
  'callers, each a new client with a node of its own, timing connect() to its first reply (bench/join.ts).',
  'The reference, in the same run: a second client on that node once it knows the cluster (a new TCP',
  'connection and one request); the ratio, fresh / reference, is what joining adds.',
  'Before the join request a caller waited for each replica’s next periodic advert: about 1.5 s at the',
  'median, up to 3 s.',
  '',
  ...(frozen === undefined ? [] : [...freezeRows(frozen[0], frozen[1], frozenStolen), '']),
  ...section('balancing', [
    ...balancingTable(balancing),
    '',
    `Steal during the balancing runs: ${fmtSteal(balancingStolen)}.`,
  ]),
  '',
];
const report = lines.join('\n');
process.stdout.write(report + '\n');
if (!smoke) {
  mkdirSync('docs', { recursive: true });
  writeFileSync('docs/benchmarks.md', report);
}
process.exit(0);
