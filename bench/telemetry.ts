// The cost of Kable's OpenTelemetry instrumentation: the same Kable server and client pair without the
// package, with the API but no SDK, and with an SDK whose exporters discard everything.
//   node --import ./scripts/register-ts.js bench/telemetry.ts [runs] [requests]
// prints the table; bench/run.ts adds the same rows to docs/benchmarks.md.
import { pathToFileURL } from 'node:url';
import { median, stealMeter } from './support.js';
import { measure, type TransportFigures } from './transport.js';

export const OTEL_VARIANTS = {
  absent: 'without @opentelemetry/api',
  api: 'API installed, no SDK',
  'sdk-metrics': 'metrics SDK only',
  'sdk-traces': 'trace SDK only (with its AsyncLocalStorage context manager)',
  sdk: 'both SDKs, discarding exporters',
} as const;
export type OtelVariant = keyof typeof OTEL_VARIANTS;
type Compared = Exclude<OtelVariant, 'absent'>;
const COMPARED: Compared[] = ['api', 'sdk-metrics', 'sdk-traces', 'sdk'];

export interface TelemetryRuns {
  medians: Record<OtelVariant, TransportFigures>;
  /** Throughput against the run's `absent` pair, one value per run. */
  throughputPerRun: Record<Compared, number[]>;
  /** Medians of the per-run ratios against `absent`. */
  ratios: Record<Compared, { throughput: number; serverCpu: number; clientCpu: number }>;
}

export async function compareTelemetry(repeats: number, requests: number): Promise<TelemetryRuns> {
  const runs: Array<Record<OtelVariant, TransportFigures>> = [];
  const variants = Object.keys(OTEL_VARIANTS) as OtelVariant[];
  for (let i = 0; i < repeats; i++) {
    const figures = {} as Record<OtelVariant, TransportFigures>;
    // Rotated each run, so that no variant always goes first (or last) on a machine that drifts.
    for (let j = 0; j < variants.length; j++) {
      const variant = variants[(i + j) % variants.length];
      const env: Record<string, string> = variant === 'api' ? {} : { KABLE_BENCH_OTEL: variant };
      figures[variant] = await measure('kable', requests, env);
    }
    runs.push(figures);
  }
  const of = (variant: OtelVariant, figure: keyof TransportFigures) => runs.map((r) => r[variant][figure]);
  const medians = {} as Record<OtelVariant, TransportFigures>;
  for (const variant of variants) {
    medians[variant] = Object.fromEntries(
      (Object.keys(runs[0][variant]) as Array<keyof TransportFigures>).map((f) => [
        f,
        median(of(variant, f)),
      ]),
    ) as unknown as TransportFigures;
  }
  const ratio = (variant: Compared, figure: keyof TransportFigures) =>
    runs.map((r) => r[variant][figure] / r.absent[figure]);
  const throughputPerRun = {} as TelemetryRuns['throughputPerRun'];
  const ratios = {} as TelemetryRuns['ratios'];
  for (const variant of COMPARED) {
    throughputPerRun[variant] = ratio(variant, 'throughput');
    ratios[variant] = {
      throughput: median(throughputPerRun[variant]),
      serverCpu: median(ratio(variant, 'cpuPerRequest')),
      clientCpu: median(ratio(variant, 'clientCpuPerRequest')),
    };
  }
  return { medians, throughputPerRun, ratios };
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function telemetryTable(result: TelemetryRuns): string[] {
  return [
    '| Kable with OpenTelemetry | throughput (req/s) | p50 (ms) | server CPU per request (µs) | client CPU per request (µs) |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...(Object.keys(OTEL_VARIANTS) as OtelVariant[]).map((variant) => {
      const m = result.medians[variant];
      return `| ${OTEL_VARIANTS[variant]} | ${fmt(m.throughput)} | ${fmt(m.p50, 3)} | ${fmt(m.cpuPerRequest, 1)} | ${fmt(m.clientCpuPerRequest, 1)} |`;
    }),
    '',
    '| ratio to "without" (median of per-run ratios) | throughput | server CPU | client CPU | target |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...COMPARED.map((variant) => {
      const r = result.ratios[variant];
      const target = variant === 'api' ? 'throughput ≥ 0.95' : 'reported';
      return `| ${OTEL_VARIANTS[variant]} | ${fmt(r.throughput, 2)} | ${fmt(r.serverCpu, 2)} | ${fmt(r.clientCpu, 2)} | ${target} |`;
    }),
    '',
    'Per run, throughput against "without": ' +
      COMPARED.map((v) => `${v} ${result.throughputPerRun[v].map((r) => fmt(r, 2)).join(', ')}`).join('; ') +
      '.',
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const repeats = Number(process.argv[2] ?? 5);
  const requests = Number(process.argv[3] ?? 30_000);
  const steal = stealMeter();
  const result = await compareTelemetry(repeats, requests);
  const stolen = steal();
  process.stdout.write(
    [
      `${repeats} runs of ${fmt(requests)} requests, 100 in flight; steal ${fmt(stolen * 100)}%.`,
      '',
      ...telemetryTable(result),
    ].join('\n') + '\n',
  );
  process.exit(0);
}
