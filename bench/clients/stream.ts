// One stream run, server and client in this one process:
// node --import ./scripts/register-ts.js bench/clients/stream.ts <kable|raw> <count> <bytes, 0: small integers> <runs> [discovery JSON]
// The handler returns an Observable of <count> values; prints {"result":{"valuesPerSecond":..}} (median of <runs>, after one warm-up).
import 'reflect-metadata';
import { Decoder, Encoder } from '@msgpack/msgpack';
import net from 'node:net';
import { count as counted, lastValueFrom } from 'rxjs';
import { median } from '../support.js';
import { frameReader, kableInProcess } from './in-process.js';

const [kind, countText, sizeText, runsText, discoveryJson] = process.argv.slice(2);
const count = Number(countText);
const size = Number(sizeText);

type Stream = () => Promise<number>;

async function kable(): Promise<[Stream, () => Promise<void>]> {
  const { client, close } = await kableInProcess(JSON.parse(discoveryJson), 'stream');
  return [() => lastValueFrom(client.send('stream', { count, size }).pipe(counted())), close];
}

/**
 * The reference: on any request frame, the server writes the values as length-prefixed MessagePack
 * frames, corked (a large value as header and bytes, uncopied), then an empty frame to end; the client
 * decodes each frame.
 */
async function raw(): Promise<[Stream, () => Promise<void>]> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const encoder = new Encoder();
    const block = Buffer.alloc(size, 7);
    socket.on(
      'data',
      frameReader(() => {
        socket.cork();
        for (let i = 0; i < count; i++) {
          if (size === 0) {
            const body = encoder.encode(i);
            const frame = Buffer.allocUnsafe(4 + body.length);
            frame.writeUInt32BE(body.length, 0);
            frame.set(body, 4);
            socket.write(frame);
          } else {
            const header = Buffer.allocUnsafe(9);
            header.writeUInt32BE(5 + size, 0);
            header.writeUInt8(0xc6, 4);
            header.writeUInt32BE(size, 5);
            socket.write(header);
            socket.write(block);
          }
        }
        socket.write(Buffer.alloc(4));
        socket.uncork();
      }),
    );
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  const decoder = new Decoder();
  let received = 0;
  let done: ((n: number) => void) | undefined;
  socket.on(
    'data',
    frameReader((frame) => {
      if (frame.length === 0) return done?.(received);
      decoder.decode(frame);
      received++;
    }),
  );
  return [
    () =>
      new Promise<number>((resolve) => {
        received = 0;
        done = resolve;
        socket.write(Buffer.from([0, 0, 0, 1, 0xc0]));
      }),
    async () => {
      socket.destroy();
      server.close();
    },
  ];
}

const [stream, close] = await (kind === 'raw' ? raw() : kable());
await stream(); // warm-up
const rates: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < Number(runsText); i++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const values = await stream();
  const used = process.cpuUsage(c0);
  if (values !== count) throw new Error(`received ${values} values, not ${count}`);
  rates.push(count / ((performance.now() - t0) / 1000));
  cpu.push((used.user + used.system) / count);
}
await close();
// CPU microseconds per value (both ends, this one process): steadier than the rate on a shared machine.
process.stdout.write(
  JSON.stringify({ result: { valuesPerSecond: median(rates), cpuPerValue: median(cpu) } }) + '\n',
);
process.exit(0);
