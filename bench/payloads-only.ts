// npm run bench is long; this runs only the large-payload rows: node --import ./scripts/register-ts.js bench/payloads-only.ts [repeats]
import { comparePayloads, payloadTable } from './payloads.js';
const repeats = Number(process.argv[2] ?? 3);
process.stdout.write(
  payloadTable(await comparePayloads(repeats, 256 * 1024 * 1024), repeats).join('\n') + '\n',
);
process.exit(0);
