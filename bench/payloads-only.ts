// `npm run bench` takes long; this runs only the large-payload and stream rows, and Kable against the raw
// socket corked per tick (small requests): node --import ./scripts/register-ts.js bench/payloads-only.ts [repeats]
// With --only=strings after the repeats, only the large-string rows; with --only=payloads, only the binary
// payload rows and the head-of-line row.
import { loadavg } from 'node:os';
import { comparePayloads, headOfLine, headOfLineTable, payloadTable } from './payloads.js';
import { compareStreams, streamTable } from './streams.js';
import { compareStrings, stringTable } from './strings.js';
import { median, stealMeter } from './support.js';
import { measure } from './transport.js';

const repeats = Number(process.argv[2] ?? 3);
const fmt = (n: number, digits = 2) => n.toFixed(digits);
const before = loadavg()[0];
const steal = stealMeter();
if (process.argv.includes('--only=strings')) {
  const strings = await compareStrings(repeats, 64 * 1024 * 1024);
  const stolen = steal();
  process.stdout.write(
    [
      ...stringTable(strings, repeats),
      '',
      `Load average (1 min) before / after: ${before.toFixed(1)} / ${loadavg()[0].toFixed(1)}; steal ${(stolen * 100).toFixed(0)}%.`,
    ].join('\n') + '\n',
  );
  process.exit(0);
}
if (process.argv.includes('--only=payloads')) {
  const payloads = await comparePayloads(repeats, 256 * 1024 * 1024);
  const blocking = await headOfLine(2000, repeats);
  const stolen = steal();
  process.stdout.write(
    [
      ...payloadTable(payloads, repeats),
      '',
      ...headOfLineTable(blocking),
      '',
      `Load average (1 min) before / after: ${before.toFixed(1)} / ${loadavg()[0].toFixed(1)}; steal ${(stolen * 100).toFixed(0)}%.`,
    ].join('\n') + '\n',
  );
  process.exit(0);
}
const small: Array<{ throughput: number; p50: number }> = [];
for (let i = 0; i < repeats; i++) {
  const kable = await measure('kable', 30_000);
  const corked = await measure('raw-corked', 30_000);
  small.push({ throughput: kable.throughput / corked.throughput, p50: kable.p50 / corked.p50 });
  process.stderr.write(
    `small requests run ${i + 1}: kable ${fmt(kable.throughput, 0)} req/s p50 ${fmt(kable.p50 * 1000, 0)} us; raw corked ${fmt(corked.throughput, 0)} req/s p50 ${fmt(corked.p50 * 1000, 0)} us\n`,
  );
}
const payloads = await comparePayloads(repeats, 256 * 1024 * 1024);
const blocking = await headOfLine(2000, repeats);
const strings = await compareStrings(repeats, 64 * 1024 * 1024);
const streams = await compareStreams(repeats, false);
const stolen = steal();
process.stdout.write(
  [
    `Small \`sum\` requests, Kable / raw socket corked per tick (both ends), 30,000 requests, ${repeats} runs:`,
    `throughput ${fmt(median(small.map((r) => r.throughput)))} (per run ${small.map((r) => fmt(r.throughput)).join(', ')}),`,
    `sequential p50 ${fmt(median(small.map((r) => r.p50)))} (per run ${small.map((r) => fmt(r.p50)).join(', ')}).`,
    '',
    ...payloadTable(payloads, repeats),
    '',
    ...headOfLineTable(blocking),
    '',
    ...stringTable(strings, repeats),
    '',
    ...streamTable(streams, repeats),
    '',
    `Load average (1 min) before / after: ${before.toFixed(1)} / ${loadavg()[0].toFixed(1)}; steal ${(stolen * 100).toFixed(0)}%.`,
  ].join('\n') + '\n',
);
process.exit(0);
