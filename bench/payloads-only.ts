// `npm run bench` takes long; this runs only the large-payload and stream rows:
// node --import ./scripts/register-ts.js bench/payloads-only.ts [repeats]
import { loadavg } from 'node:os';
import { comparePayloads, payloadTable } from './payloads.js';
import { compareStreams, streamTable } from './streams.js';

const repeats = Number(process.argv[2] ?? 3);
const before = loadavg()[0];
const payloads = await comparePayloads(repeats, 256 * 1024 * 1024);
const streams = await compareStreams(repeats, false);
process.stdout.write(
  [
    ...payloadTable(payloads, repeats),
    '',
    ...streamTable(streams, repeats),
    '',
    `Load average (1 min) before / after: ${before.toFixed(1)} / ${loadavg()[0].toFixed(1)}.`,
  ].join('\n') + '\n',
);
process.exit(0);
