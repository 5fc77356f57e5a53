// `npm run bench` takes long; this runs only Kable against the peers a user would pick instead, alternating
// fresh process pairs: node --import ./scripts/register-ts.js bench/peers-only.ts [repeats] [requests]
import { loadavg } from 'node:os';
import { stealMeter } from './support.js';
import { measure, type Kind, type TransportFigures } from './transport.js';

const repeats = Number(process.argv[2] ?? 2);
const requests = Number(process.argv[3] ?? 20_000);
const kinds: Kind[] = ['kable', 'moleculer-tcp', 'nest-nats'];
const fmt = (n: number, digits = 2) => n.toFixed(digits);
const row = (kind: Kind, f: TransportFigures) =>
  `${kind}: ${fmt(f.throughput, 0)} req/s, p50 ${fmt(f.p50 * 1000, 0)} us, p99 ${fmt(f.p99 * 1000, 0)} us, ` +
  `server CPU ${fmt(f.cpuPerRequest, 1)} us/req, client CPU ${fmt(f.clientCpuPerRequest, 1)} us/req`;
const steal = stealMeter();
const before = loadavg()[0];
for (let i = 0; i < repeats; i++) {
  const run = {} as Record<Kind, TransportFigures>;
  for (const kind of kinds) {
    run[kind] = await measure(kind, requests);
    process.stdout.write(`run ${i + 1} ${row(kind, run[kind])}\n`);
  }
  for (const peer of ['moleculer-tcp', 'nest-nats'] as const)
    process.stdout.write(
      `run ${i + 1} kable / ${peer}: throughput ${fmt(run.kable.throughput / run[peer].throughput)}, ` +
        `p50 ${fmt(run.kable.p50 / run[peer].p50)}\n`,
    );
}
const stolen = steal();
process.stdout.write(
  `load average (1 min) before / after: ${fmt(before, 1)} / ${fmt(loadavg()[0], 1)}; steal ${fmt(stolen * 100, 0)}%\n`,
);
process.exit(0);
