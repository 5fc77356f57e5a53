// The cost of Kable's OpenTelemetry instrumentation: the same Kable server and client pair without the
// package, with the API but no SDK, and with an SDK whose exporters discard everything.
//   node --import ./test/support/register-ts.js bench/telemetry.ts [runs] [requests]
// prints the table; bench/run.ts adds the same rows to docs/benchmarks.md.
import { pathToFileURL } from 'node:url';
import { median, stealMeter } from './support.js';
import { measure, type TransportFigures } from './transport.js';

export const OTEL_VARIANTS = {
  absent: 'without @opentelemetry/api',
  api: 'API installed, no SDK',
  sdk: 'SDK, discarding exporters',
} as const;
export type OtelVariant = keyof typeof OTEL_VARIANTS;

export interface TelemetryRuns {
  medians: Record<OtelVariant, TransportFigures>;
  /** Throughput against the run's `absent` pair, one value per run. */
  throughputPerRun: Record<'api' | 'sdk', number[]>;
  /** Medians of the per-run ratios against `absent`. */
  ratios: Record<'api' | 'sdk', { throughput: number; serverCpu: number; clientCpu: number }>;
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
  const ratio = (variant: 'api' | 'sdk', figure: keyof TransportFigures) =>
    runs.map((r) => r[variant][figure] / r.absent[figure]);
  const throughputPerRun = { api: ratio('api', 'throughput'), sdk: ratio('sdk', 'throughput') };
  const ratios = {} as TelemetryRuns['ratios'];
  for (const variant of ['api', 'sdk'] as const) {
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
    `| API installed, no SDK | ${fmt(result.ratios.api.throughput, 2)} | ${fmt(result.ratios.api.serverCpu, 2)} | ${fmt(result.ratios.api.clientCpu, 2)} | throughput ≥ 0.95 |`,
    `| SDK, discarding exporters | ${fmt(result.ratios.sdk.throughput, 2)} | ${fmt(result.ratios.sdk.serverCpu, 2)} | ${fmt(result.ratios.sdk.clientCpu, 2)} | reported |`,
    '',
    `Per run, throughput against "without": API ${result.throughputPerRun.api.map((r) => fmt(r, 2)).join(', ')};`,
    `SDK ${result.throughputPerRun.sdk.map((r) => fmt(r, 2)).join(', ')}.`,
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
