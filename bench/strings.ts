import { median, run } from './support.js';
import { loopbackDiscovery } from './transport.js';

/** String payloads measured: log-like ASCII text at three sizes, and text with 2- to 4-byte UTF-8 characters. */
export const STRING_SHAPES = [
  // 8,192 requests, not the 1,024 the run's bytes would give: over 1,024 requests the child was still
  // settling (Kable / codec about 0.75, where the same child gave about 1.0 after 8,192), Kable and raw alike.
  { name: '64 KiB ASCII', alphabet: 'ascii', size: 64 * 1024, minRequests: 8192 },
  { name: '1 MiB ASCII', alphabet: 'ascii', size: 1024 * 1024, minRequests: 8 },
  { name: '8 MiB ASCII', alphabet: 'ascii', size: 8 * 1024 * 1024, minRequests: 8 },
  { name: '1 MiB UTF-8 multibyte', alphabet: 'utf8', size: 1024 * 1024, minRequests: 8 },
  // The string as a field of an object, `{ text }`: encoded inside a value by the codec, not by the writer.
  { name: '1 MiB ASCII in an object', alphabet: 'ascii-field', size: 1024 * 1024, minRequests: 8 },
] as const;
const IN_FLIGHT = 4;

/** What one child reports: bytes of string per second of wall-clock and of CPU time. */
interface StringFigures {
  bytesPerSecond: number;
  codecBytesPerSecond: number;
  cpuBytesPerSecond: number;
  codecCpuBytesPerSecond: number;
}

export interface StringRow {
  name: string;
  kable: number;
  /** The codec's own encode + decode rate, measured in Kable's children. */
  codec: number;
  raw: number;
  /** Kable / codec bytes per second (wall clock, same child), one value per run. */
  perRunCodec: number[];
  /** Kable / codec bytes per CPU second (same child), one value per run. */
  perRunCodecCpu: number[];
  /** Kable / raw bytes per second, one value per run. */
  perRunRaw: number[];
}

async function measure(
  kind: 'kable' | 'raw',
  alphabet: string,
  size: number,
  bytes: number,
  minRequests: number,
) {
  const requests = Math.max(minRequests, Math.round(bytes / size));
  const child = run(
    'bench/clients/string.ts',
    [kind, alphabet, String(size), String(requests), JSON.stringify(loopbackDiscovery())],
    undefined,
    ['--expose-gc'],
  );
  try {
    const { result } = (await child.next('result')) as { result: StringFigures };
    return result;
  } finally {
    await child.stop();
  }
}

/**
 * Large string payloads (one string per request, the handler returns its length, 4 in flight), Kable and
 * a raw length-prefixed socket carrying the string MessagePack-encoded, each in a fresh process holding
 * both ends; each child also times the codec alone on the same request. `bytes` of string per run and shape.
 */
export async function compareStrings(repeats: number, bytes: number, smoke = false): Promise<StringRow[]> {
  const rows: StringRow[] = [];
  for (const shape of STRING_SHAPES) {
    const { name, alphabet, size } = shape;
    // A smoke run only checks that it works: no settling.
    const minRequests = smoke ? 8 : shape.minRequests;
    const runs: Array<{ kable: StringFigures; raw: StringFigures }> = [];
    for (let i = 0; i < repeats; i++) {
      const kable = await measure('kable', alphabet, size, bytes, minRequests);
      const raw = await measure('raw', alphabet, size, bytes, minRequests);
      runs.push({ kable, raw });
    }
    rows.push({
      name,
      kable: median(runs.map((r) => r.kable.bytesPerSecond)),
      codec: median(runs.map((r) => r.kable.codecBytesPerSecond)),
      raw: median(runs.map((r) => r.raw.bytesPerSecond)),
      perRunCodec: runs.map((r) => r.kable.bytesPerSecond / r.kable.codecBytesPerSecond),
      perRunCodecCpu: runs.map((r) => r.kable.cpuBytesPerSecond / r.kable.codecCpuBytesPerSecond),
      perRunRaw: runs.map((r) => r.kable.bytesPerSecond / r.raw.bytesPerSecond),
    });
  }
  return rows;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const list = (values: number[]) => values.map((v) => fmt(v, 2)).join(', ');

export function stringTable(rows: StringRow[], repeats: number): string[] {
  return [
    `Large string payloads: one string per request, the handler returns its length, ${IN_FLIGHT} in flight, server and`,
    'client in one fresh process (bench/clients/string.ts); MB/s are megabytes of UTF-8 per second. The codec',
    "reference is @msgpack/msgpack's own rate on the same request in the same process, one long-lived `Encoder`",
    '(`encodeSharedRef`, no copy out) and one `Decoder`, each request encoded once and decoded once, timed',
    "before and after Kable's phase; CPU is the process's user + system time (both ends). The raw reference is",
    'a length-prefixed socket carrying the string MessagePack-encoded and decoding it on the other end.',
    '"In an object": the request is `{ text }`, so the string is met inside a value (all three sides alike).',
    `The 64 KiB row runs 8,192 requests, the others 64 MiB; each child first runs one uncounted round of`,
    `each. ${repeats} runs interleaved, medians.`,
    '',
    '| string | Kable (MB/s) | codec encode + decode (MB/s) | raw socket (MB/s) | Kable / codec (target ≥ 0.8) | per run | Kable / codec, CPU time | per run | Kable / raw | per run |',
    '| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | --- |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${fmt(r.kable / 1e6)} | ${fmt(r.codec / 1e6)} | ${fmt(r.raw / 1e6)} | ${fmt(median(r.perRunCodec), 2)} | ${list(r.perRunCodec)} | ${fmt(median(r.perRunCodecCpu), 2)} | ${list(r.perRunCodecCpu)} | ${fmt(median(r.perRunRaw), 2)} | ${list(r.perRunRaw)} |`,
    ),
  ];
}
