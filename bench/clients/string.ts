// One large-string run, server and client in this one process:
// node --expose-gc --import ./scripts/register-ts.js bench/clients/string.ts <kable|raw> <ascii|utf8|ascii-field> <bytes> <requests> [discovery JSON]
// Each request carries one string of <bytes> UTF-8 bytes (ascii-field: as the `text` field of an object);
// the handler answers its length; 4 requests in flight.
// The same child also times the MessagePack codec alone on the same request, in rounds alternating with the transport's:
// prints {"result":{"bytesPerSecond":..,"codecBytesPerSecond":..,"cpuBytesPerSecond":..,"codecCpuBytesPerSecond":..}}
// (bytes of string per second of wall-clock time and of this process's CPU time, user + system).
import 'reflect-metadata';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { firstValueFrom } from 'rxjs';
import { kableInProcess, rawRequests } from './in-process.js';

const [kind, alphabet, sizeText, requestsText, discoveryJson] = process.argv.slice(2);
const size = Number(sizeText);
const requests = Number(requestsText);
const IN_FLIGHT = 4;
const text = sample(alphabet === 'utf8', size);
// In a field, the string is inside a value the codec encodes, not the request's data itself.
const inField = alphabet.endsWith('-field');
const pattern = inField ? 'text-field' : 'text';
const payload: string | { text: string } = inField ? { text } : text;
const textBytes = Buffer.byteLength(text, 'utf8');

/**
 * A flat string of about `bytes` UTF-8 bytes: log-like ASCII text, or the same mixed with 2-, 3- and 4-byte
 * characters (Polish, Japanese, an emoji). Decoded from bytes so that V8 holds it flat, as a string read
 * from a file or a request body would be, not as a rope of concatenations.
 */
function sample(multibyte: boolean, bytes: number): string {
  const line = multibyte
    ? 'zażółć gęślą jaźń; 日本語のテキスト 🚀 id=%, status=ok\n'
    : '2026-11-23T17:00:00Z INFO request id=% handled in 12 ms status=ok\n';
  const pieces: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const piece = line.replace('%', String(i));
    pieces.push(piece);
    length += Buffer.byteLength(piece);
  }
  const encoded = Buffer.from(pieces.join(''), 'utf8');
  // Cut at a character boundary at or below `bytes`: skip back over UTF-8 continuation bytes.
  let end = bytes;
  while ((encoded[end] & 0xc0) === 0x80) end--;
  return encoded.subarray(0, end).toString('utf8');
}

type Call = () => Promise<number>;

async function kable(): Promise<[Call, () => Promise<void>]> {
  const { client, close } = await kableInProcess(JSON.parse(discoveryJson), pattern, {
    // 4 x 8 MiB in flight is over the default 32 MiB queued toward one server (maxQueuedBytes): raised here.
    maxQueuedBytes: 64 * 1024 * 1024,
  });
  return [() => firstValueFrom(client.send<number>(pattern, payload)), close];
}

/**
 * The reference: the string MessagePack-encoded on a bare socket (rawRequests), decoded at the other end
 * and answered with its length. The sender encodes with one long-lived Encoder (`encode`: the bytes must
 * outlive the next call while the socket holds them); the receiver decodes with one Decoder.
 */
function raw(): Promise<[Call, () => Promise<void>]> {
  const encoder = new Encoder();
  const decoder = new Decoder();
  return rawRequests(
    (body) => {
      const value = decoder.decode(body) as string | { text: string };
      return typeof value === 'string' ? value.length : value.text.length;
    },
    () => encoder.encode(payload),
  );
}

/**
 * The codec alone: the request Kable sends ([type, id, pattern, data]) encoded by one long-lived Encoder
 * into its own buffer (`encodeSharedRef`, no copy out: the codec's fastest form) and decoded by one
 * Decoder, one request after the other. Returns [wall seconds, CPU seconds].
 */
function codec(count: number): [number, number] {
  const encoder = new Encoder({ ignoreUndefined: true });
  const decoder = new Decoder();
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const value = decoder.decode(encoder.encodeSharedRef([1, i, pattern, payload])) as unknown[];
    const decoded = inField ? (value[3] as { text: string }).text : (value[3] as string);
    if (decoded.length !== text.length) throw new Error('the codec lost characters');
  }
  const wall = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  return [wall, (used.user + used.system) / 1e6];
}

const [call, close] = await (kind === 'raw' ? raw() : kable());
let started = 0;
const lanes = async (count: number) =>
  Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (started < count) {
        started++;
        const length = await call();
        if (length !== text.length)
          throw new Error(`the handler saw ${length} characters, not ${text.length}`);
      }
    }),
  );
// Codec and transport alternate in rounds (codec first and last), so that a slow moment of the shared
// machine weighs on both rather than on one figure.
const ROUNDS = 4;
// At least IN_FLIGHT requests a round, so that each round has all its lanes busy.
const perRound = Math.max(IN_FLIGHT, Math.round(requests / ROUNDS));
// Warm-up, uncounted: one round of each. With 8 warm-up calls the 64 KiB row (1,024 requests) was
// measured while V8 was still compiling the transport's paths: 0.74 of the codec's rate, against 0.98
// in the same child given 8,192 requests.
await lanes(perRound);
codec(perRound);
let codecWall = 0;
let codecCpu = 0;
let codecRequests = 0;
let wall = 0;
let cpu = 0;
const codecRound = () => {
  globalThis.gc?.();
  const [w, c] = codec(perRound);
  codecWall += w;
  codecCpu += c;
  codecRequests += perRound;
};
for (let round = 0; round < ROUNDS; round++) {
  codecRound();
  globalThis.gc?.();
  const cpuBefore = process.cpuUsage();
  const t0 = performance.now();
  started = 0;
  await lanes(perRound);
  wall += (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpuBefore);
  cpu += (used.user + used.system) / 1e6;
}
codecRound();
await close();
const moved = ROUNDS * perRound * textBytes;
const codecMoved = codecRequests * textBytes;
process.stdout.write(
  JSON.stringify({
    result: {
      bytesPerSecond: moved / wall,
      codecBytesPerSecond: codecMoved / codecWall,
      cpuBytesPerSecond: moved / cpu,
      codecCpuBytesPerSecond: codecMoved / codecCpu,
    },
  }) + '\n',
);
process.exit(0);
