import { LARGE_UPLOAD_SETTINGS, median, run, type Child } from './support.js';
import { loopbackDiscovery } from './transport.js';

/** Payload sizes measured: a large message, a file chunk, a file. */
export const PAYLOAD_SIZES = [64 * 1024, 1024 * 1024, 8 * 1024 * 1024];
const IN_FLIGHT = 4;
/** Where the two ends run: one process, or the server in a process of its own (the usual deployment). */
export type PayloadLayout = 'one' | 'two';
export const PAYLOAD_LAYOUTS: PayloadLayout[] = ['one', 'two'];
/** The concurrency row: many callers of one size at once (lanes of one client). */
const MANY_CALLERS = { size: 1024 * 1024, inFlight: 16 };
/**
 * "default": every process as Node starts it; "tuned": the server process (either transport's; in the
 * one-process layout, that process) with LARGE_UPLOAD_SETTINGS (bench/support.ts), for the 8 MiB rows.
 */
export type ProcessSettings = 'default' | 'tuned';

export interface PayloadFigures {
  bytesPerSecond: number;
  /** Peak ArrayBuffer memory above idle, per payload in flight (live bytes after a forced GC). */
  peakArrayBuffersPerPayload: number;
  /** Peak resident memory above idle, per payload in flight. */
  peakRssPerPayload: number;
  /** The server process's full collections in the timed phase (one process: that process's). */
  serverFullCollections: number;
}

export interface PayloadRow {
  size: number;
  layout: PayloadLayout;
  inFlight: number;
  settings: ProcessSettings;
  /** Medians over the runs (the collections are per run, below). */
  kable: Omit<PayloadFigures, 'serverFullCollections'>;
  raw: Omit<PayloadFigures, 'serverFullCollections'>;
  /** Kable / raw bytes per second, one value per run. */
  perRun: number[];
  /** Each run's server full collections, Kable's and the raw socket's. */
  fullCollections: Array<[number, number]>;
  ratio: number;
}

async function measure(
  kind: 'kable' | 'raw',
  size: number,
  bytes: number,
  layout: PayloadLayout,
  lanes: number,
  settings: ProcessSettings,
): Promise<PayloadFigures> {
  const requests = Math.max(8, Math.round(bytes / size));
  // Tuned, one process: this child is the server process (and the caller); with two, it tunes its server.
  const tunedHere = settings === 'tuned' && layout === 'one';
  // In the two-process layout the caller runs on core 1 and starts its server on core 0.
  const child = run(
    'bench/clients/payload.ts',
    [
      kind,
      String(size),
      String(requests),
      JSON.stringify(loopbackDiscovery()),
      layout,
      String(lanes),
      settings,
    ],
    tunedHere ? LARGE_UPLOAD_SETTINGS.env : undefined,
    ['--expose-gc', ...(tunedHere ? LARGE_UPLOAD_SETTINGS.nodeOptions : [])],
    layout === 'two' ? 1 : undefined,
  );
  try {
    const { result } = (await child.next('result')) as { result: Record<string, number> };
    const inFlight = size * lanes;
    return {
      bytesPerSecond: result.bytesPerSecond,
      peakArrayBuffersPerPayload: result.peakArrayBuffers / inFlight,
      peakRssPerPayload: result.peakRss / inFlight,
      serverFullCollections: result.serverFullCollections,
    };
  } finally {
    await child.stop();
  }
}

/**
 * Large binary payloads (one Buffer per request, the handler returns its length, 4 in flight), Kable with
 * its default options and a raw length-prefixed socket, in fresh processes, in both layouts; then 16
 * callers of 1 MiB at once, two processes. `bytes` moved per run and row.
 */
export async function comparePayloads(repeats: number, bytes: number): Promise<PayloadRow[]> {
  const rows: PayloadRow[] = [];
  const configurations = [
    ...PAYLOAD_LAYOUTS.flatMap((layout) =>
      PAYLOAD_SIZES.map((size) => ({ layout, size, inFlight: IN_FLIGHT, settings: 'default' as const })),
    ),
    { layout: 'two' as const, ...MANY_CALLERS, settings: 'default' as const },
    ...PAYLOAD_LAYOUTS.map((layout) => ({
      layout,
      size: 8 * 1024 * 1024,
      inFlight: IN_FLIGHT,
      settings: 'tuned' as const,
    })),
  ];
  for (const { layout, size, inFlight, settings } of configurations) {
    const runs: Array<{ kable: PayloadFigures; raw: PayloadFigures }> = [];
    for (let i = 0; i < repeats; i++) {
      const kable = await measure('kable', size, bytes, layout, inFlight, settings);
      const raw = await measure('raw', size, bytes, layout, inFlight, settings);
      runs.push({ kable, raw });
    }
    const medians = (
      pick: (r: (typeof runs)[number]) => PayloadFigures,
    ): Omit<PayloadFigures, 'serverFullCollections'> => ({
      bytesPerSecond: median(runs.map((r) => pick(r).bytesPerSecond)),
      peakArrayBuffersPerPayload: median(runs.map((r) => pick(r).peakArrayBuffersPerPayload)),
      peakRssPerPayload: median(runs.map((r) => pick(r).peakRssPerPayload)),
    });
    const perRun = runs.map((r) => r.kable.bytesPerSecond / r.raw.bytesPerSecond);
    rows.push({
      size,
      layout,
      inFlight,
      settings,
      kable: medians((r) => r.kable),
      raw: medians((r) => r.raw),
      perRun,
      fullCollections: runs.map((r) => [r.kable.serverFullCollections, r.raw.serverFullCollections]),
      ratio: median(perRun),
    });
  }
  return rows;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sizeName = (size: number) => (size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`);

const layoutName = (layout: PayloadLayout) => (layout === 'one' ? 'one process' : 'two processes');

const collections = (runs: PayloadRow['fullCollections']) =>
  runs.map(([kable, raw]) => `${kable} / ${raw}`).join(', ');

export function payloadTable(rows: PayloadRow[], repeats: number): string[] {
  return [
    `Large binary payloads: one \`Buffer\` per request, the handler returns its length, every Kable option at its`,
    `default. "one process": server and client in one fresh process; "two processes": the server in a process of`,
    `its own (core 0) and the caller in another (core 1). The reference is a raw length-prefixed socket in the same`,
    `layout (bench/clients/payload.ts). ${repeats} runs interleaved, medians; memory is the caller process's peak above`,
    'idle per payload in flight (live ArrayBuffer bytes after a forced GC at each reply, in a phase of its own; in',
    'the one-process layout it holds both ends). "Node defaults" is each process as Node starts it; "tuned server"',
    'starts the server process (in the one-process layout, that process), of either transport, with',
    `\`node ${LARGE_UPLOAD_SETTINGS.nodeOptions.join(' ')}\` and`,
    `\`GLIBC_TUNABLES=${LARGE_UPLOAD_SETTINGS.env.GLIBC_TUNABLES}\` (what they do:`,
    "README, Limits). Full collections: the server process's mark-compacts in each run's timed phase (in the",
    "one-process layout, that process's), Kable / raw.",
    '',
    '| payload | layout | in flight | process settings | Kable (MB/s) | raw socket (MB/s) | Kable / raw (target ≥ 0.8) | per run | server full collections per run | Kable peak memory / payload in flight (target ≤ 3) | raw |',
    '| --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${sizeName(r.size)} | ${layoutName(r.layout)} | ${r.inFlight} | ${r.settings === 'tuned' ? 'tuned server' : 'Node defaults'} | ${fmt(r.kable.bytesPerSecond / 1e6)} | ${fmt(r.raw.bytesPerSecond / 1e6)} | ${fmt(r.ratio, 2)} | ${r.perRun.map((v) => fmt(v, 2)).join(', ')} | ${collections(r.fullCollections)} | ${fmt(r.kable.peakArrayBuffersPerPayload, 1)} | ${fmt(r.raw.peakArrayBuffersPerPayload, 1)} |`,
    ),
  ];
}

/** Head-of-line runs in a full `npm run bench`: an odd count, so that the median is one of them. */
export const HEAD_OF_LINE_RUNS = 5;

export interface HeadOfLineFigures {
  alone: { p50: number; p99: number };
  loaded: { p50: number; p99: number };
  uploads: number;
  uploadBytesPerSecond: number;
  /** The server process's full collections while the uploads ran. */
  serverFullCollections: number;
}

/**
 * Small requests (16 bytes, sequential) from a client that uploads 8 MiB per request back to back (over
 * its bulk lane, with default options), against the same small requests alone; the server in a process of
 * its own. `runs` runs, each with fresh processes: whether the server falls into V8's collecting regime is
 * decided per process, and the loaded p99 follows it (docs/benchmarks.md), so one run says little.
 */
export async function headOfLine(smallRequests: number, runs: number): Promise<HeadOfLineFigures[]> {
  const figures: HeadOfLineFigures[] = [];
  for (let i = 0; i < runs; i++) {
    const child: Child = run(
      'bench/clients/head-of-line.ts',
      [JSON.stringify(loopbackDiscovery()), String(smallRequests), String(8 * 1024 * 1024)],
      undefined,
      [],
      1,
    );
    try {
      figures.push(((await child.next('result')) as { result: HeadOfLineFigures }).result);
    } finally {
      await child.stop();
    }
  }
  return figures;
}

export function headOfLineTable(runs: HeadOfLineFigures[]): string[] {
  // The run with the median loaded p99 (the lower middle one of an even count) gives the table's rows.
  const ordered = [...runs].sort((a, b) => a.loaded.p99 - b.loaded.p99);
  const figures = ordered[Math.floor((ordered.length - 1) / 2)];
  return [
    'Small requests beside 8 MiB uploads from the same client (head-of-line blocking): one client, one lane',
    'uploading 8 MiB per request back to back while another sends 16-byte requests one after the other; the',
    'same small requests alone first. Default options, so the uploads go over the bulk lane, the client’s',
    'second connection to the server (docs/limits.md). Server and caller in processes of their own',
    `(bench/clients/head-of-line.ts). ${runs.length} run${runs.length === 1 ? '' : 's'}, fresh processes each; the rows are the run with the median`,
    'p99 beside the uploads.',
    '',
    '| small requests | p50 (ms) | p99 (ms) (target with uploads ≤ 20) |',
    '| --- | ---: | ---: |',
    `| alone | ${fmt(figures.alone.p50, 3)} | ${fmt(figures.alone.p99, 3)} |`,
    `| with 8 MiB uploads (${fmt(figures.uploads)} uploads, ${fmt(figures.uploadBytesPerSecond / 1e6)} MB/s) | ${fmt(figures.loaded.p50, 3)} | ${fmt(figures.loaded.p99, 3)} |`,
    '',
    "Each run, in order: p99 beside the uploads, and the server's full collections while they ran: " +
      runs.map((r) => `${fmt(r.loaded.p99, 1)} ms (${fmt(r.serverFullCollections)})`).join(', ') +
      '.',
  ];
}
