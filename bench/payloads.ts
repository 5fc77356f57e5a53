import { median, run } from './support.js';
import { loopbackDiscovery } from './transport.js';

/** Payload sizes measured: a large message, a file chunk, a file. */
export const PAYLOAD_SIZES = [64 * 1024, 1024 * 1024, 8 * 1024 * 1024];
const IN_FLIGHT = 4;

export interface PayloadFigures {
  bytesPerSecond: number;
  /** Peak ArrayBuffer memory above idle, per payload in flight (live bytes after a forced GC). */
  peakArrayBuffersPerPayload: number;
  /** Peak resident memory above idle, per payload in flight. */
  peakRssPerPayload: number;
}

export interface PayloadRow {
  size: number;
  kable: PayloadFigures;
  raw: PayloadFigures;
  /** Kable / raw bytes per second, one value per run. */
  perRun: number[];
  ratio: number;
}

async function measure(kind: 'kable' | 'raw', size: number, bytes: number): Promise<PayloadFigures> {
  const requests = Math.max(8, Math.round(bytes / size));
  const child = run(
    'bench/clients/payload.ts',
    [kind, String(size), String(requests), JSON.stringify(loopbackDiscovery())],
    undefined,
    ['--expose-gc'],
  );
  try {
    const { result } = (await child.next('result')) as { result: Record<string, number> };
    const inFlight = size * IN_FLIGHT;
    return {
      bytesPerSecond: result.bytesPerSecond,
      peakArrayBuffersPerPayload: result.peakArrayBuffers / inFlight,
      peakRssPerPayload: result.peakRss / inFlight,
    };
  } finally {
    await child.stop();
  }
}

/**
 * Large binary payloads (one Buffer per request, the handler returns its length, 4 in flight), Kable and a
 * raw length-prefixed socket, each in a fresh process holding both ends; `bytes` moved per run and size.
 */
export async function comparePayloads(repeats: number, bytes: number): Promise<PayloadRow[]> {
  const rows: PayloadRow[] = [];
  for (const size of PAYLOAD_SIZES) {
    const runs: Array<{ kable: PayloadFigures; raw: PayloadFigures }> = [];
    for (let i = 0; i < repeats; i++) {
      const kable = await measure('kable', size, bytes);
      const raw = await measure('raw', size, bytes);
      runs.push({ kable, raw });
    }
    const medians = (pick: (r: (typeof runs)[number]) => PayloadFigures): PayloadFigures => ({
      bytesPerSecond: median(runs.map((r) => pick(r).bytesPerSecond)),
      peakArrayBuffersPerPayload: median(runs.map((r) => pick(r).peakArrayBuffersPerPayload)),
      peakRssPerPayload: median(runs.map((r) => pick(r).peakRssPerPayload)),
    });
    const perRun = runs.map((r) => r.kable.bytesPerSecond / r.raw.bytesPerSecond);
    rows.push({
      size,
      kable: medians((r) => r.kable),
      raw: medians((r) => r.raw),
      perRun,
      ratio: median(perRun),
    });
  }
  return rows;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sizeName = (size: number) => (size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`);

export function payloadTable(rows: PayloadRow[], repeats: number): string[] {
  return [
    `Large binary payloads: one \`Buffer\` per request, the handler returns its length, ${IN_FLIGHT} in flight, server`,
    `and client in one fresh process; the reference is a raw length-prefixed socket in the same layout`,
    `(bench/clients/payload.ts). ${repeats} runs interleaved, medians; memory is the peak above idle per payload in`,
    'flight (live ArrayBuffer bytes after a forced GC at each reply, in a phase of its own).',
    '',
    '| payload | Kable (MB/s) | raw socket (MB/s) | Kable / raw (target ≥ 0.8) | per run | Kable peak memory / payload in flight (target ≤ 3) | raw |',
    '| --- | ---: | ---: | ---: | --- | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${sizeName(r.size)} | ${fmt(r.kable.bytesPerSecond / 1e6)} | ${fmt(r.raw.bytesPerSecond / 1e6)} | ${fmt(r.ratio, 2)} | ${r.perRun.map((v) => fmt(v, 2)).join(', ')} | ${fmt(r.kable.peakArrayBuffersPerPayload, 1)} | ${fmt(r.raw.peakArrayBuffersPerPayload, 1)} |`,
    ),
  ];
}
