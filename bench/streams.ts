import { median, run } from './support.js';
import { loopbackDiscovery } from './transport.js';

export interface StreamRow {
  name: string;
  kable: number;
  raw: number;
  /** Kable / raw values per second, one value per run. */
  perRun: number[];
  ratio: number;
  /** CPU microseconds per value (both ends, one process), medians: steadier than rates on a busy machine. */
  kableCpu: number;
  rawCpu: number;
  /** Raw / Kable CPU per value, one value per run (above 1: Kable spends less). */
  cpuPerRun: number[];
}

interface StreamFigures {
  valuesPerSecond: number;
  cpuPerValue: number;
}

async function measure(
  kind: 'kable' | 'raw',
  count: number,
  size: number,
  runs: number,
): Promise<StreamFigures> {
  const child = run('bench/clients/stream.ts', [
    kind,
    String(count),
    String(size),
    String(runs),
    JSON.stringify(loopbackDiscovery()),
  ]);
  try {
    const { result } = (await child.next('result')) as { result: StreamFigures };
    return result;
  } finally {
    await child.stop();
  }
}

/**
 * A handler's Observable streamed to one caller (server and client in one fresh process), against a raw
 * socket sending the same values as length-prefixed MessagePack frames; `repeats` interleaved runs, each
 * the median of `streams` streams after a warm-up.
 */
export async function compareStreams(repeats: number, smoke: boolean): Promise<StreamRow[]> {
  const shapes = [
    { name: `${smoke ? '10,000' : '100,000'} small integers`, count: smoke ? 10_000 : 100_000, size: 0 },
    { name: `${smoke ? '100' : '1,000'} values of 64 KiB`, count: smoke ? 100 : 1000, size: 64 * 1024 },
  ];
  const streams = smoke ? 2 : 10;
  const rows: StreamRow[] = [];
  for (const { name, count, size } of shapes) {
    const runs: Array<[StreamFigures, StreamFigures]> = [];
    for (let i = 0; i < repeats; i++) {
      runs.push([await measure('kable', count, size, streams), await measure('raw', count, size, streams)]);
    }
    const perRun = runs.map(([kable, raw]) => kable.valuesPerSecond / raw.valuesPerSecond);
    rows.push({
      name,
      kable: median(runs.map((r) => r[0].valuesPerSecond)),
      raw: median(runs.map((r) => r[1].valuesPerSecond)),
      perRun,
      ratio: median(perRun),
      kableCpu: median(runs.map((r) => r[0].cpuPerValue)),
      rawCpu: median(runs.map((r) => r[1].cpuPerValue)),
      cpuPerRun: runs.map(([kable, raw]) => raw.cpuPerValue / kable.cpuPerValue),
    });
  }
  return rows;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function streamTable(rows: StreamRow[], repeats: number): string[] {
  return [
    'Streams: a handler returns an Observable (`range` piped to the values), one caller counts them; server and',
    'client in one fresh process. The reference is a raw socket writing the same values as length-prefixed',
    `MessagePack frames, corked, and decoding each (bench/clients/stream.ts). ${repeats} runs interleaved, each`,
    'the median of 10 streams after a warm-up; medians shown. CPU is microseconds per value, both ends',
    '(process.cpuUsage of the one process), steadier than the rates on a busy machine.',
    '',
    '| stream | Kable (values/s) | raw socket (values/s) | Kable / raw (target ≥ 0.8) | per run | CPU µs/value Kable / raw | raw / Kable CPU per run |',
    '| --- | ---: | ---: | ---: | --- | ---: | --- |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.kable)} | ${fmt(r.raw)} | ${fmt(r.ratio, 2)} | ${r.perRun.map((v) => fmt(v, 2)).join(', ')} | ` +
        `${fmt(r.kableCpu, 2)} / ${fmt(r.rawCpu, 2)} | ${r.cpuPerRun.map((v) => fmt(v, 2)).join(', ')} |`,
    ),
  ];
}
