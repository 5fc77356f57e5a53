import { randomInt } from 'node:crypto';
import { median, run } from './support.js';

export type Kind = 'kable' | 'kable-tls' | 'nest-tcp' | 'raw';
export const KINDS: Kind[] = ['kable', 'kable-tls', 'nest-tcp', 'raw'];

export interface TransportFigures {
  throughput: number;
  p50: number;
  p99: number;
  /** Server CPU time per request during the throughput phase, microseconds. */
  cpuPerRequest: number;
  /** Client CPU time per request during the throughput phase, microseconds. */
  clientCpuPerRequest: number;
}

function loopbackDiscovery() {
  return {
    mode: 'multicast',
    address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`,
    port: randomInt(20_000, 60_000),
    interface: '127.0.0.1',
    advertiseInterval: 200,
  };
}

/** One configuration, as a fresh server and client process pair. */
export async function measure(kind: Kind, requests: number): Promise<TransportFigures> {
  const discovery = JSON.stringify(loopbackDiscovery());
  const server = run('bench/servers/serve.ts', [kind, discovery]);
  try {
    const { port } = await server.next('ready');
    const serverCpu = async () => {
      server.send('cpu');
      return Number((await server.next('cpu')).cpu);
    };
    const client = run('bench/clients/measure.ts', [kind, String(port), discovery, String(requests)]);
    await client.next('warm');
    const before = await serverCpu();
    client.send('go');
    await client.next('loaded');
    const after = await serverCpu();
    client.send('go');
    const { result } = (await client.next('result')) as { result: Record<string, number> };
    await client.stop();
    return {
      throughput: result.throughput,
      p50: result.p50,
      p99: result.p99,
      cpuPerRequest: (after - before) / requests,
      clientCpuPerRequest: result.clientCpu,
    };
  } finally {
    await server.stop();
  }
}

export interface TransportRuns {
  runs: Array<Record<Kind, TransportFigures>>;
  medians: Record<Kind, TransportFigures>;
  ratios: {
    throughputVsNest: number;
    throughputVsRaw: number;
    p50VsNest: number;
    cpuVsNest: number;
    clientCpuVsNest: number;
    tlsVsPlain: number;
  };
}

/** Every configuration `repeats` times, interleaved; ratios are taken pair by pair within a run. */
export async function compareTransports(repeats: number, requests: number): Promise<TransportRuns> {
  const runs: Array<Record<Kind, TransportFigures>> = [];
  for (let i = 0; i < repeats; i++) {
    const figures = {} as Record<Kind, TransportFigures>;
    for (const kind of KINDS) figures[kind] = await measure(kind, requests);
    runs.push(figures);
  }
  const medianOf = (kind: Kind): TransportFigures => ({
    throughput: median(runs.map((r) => r[kind].throughput)),
    p50: median(runs.map((r) => r[kind].p50)),
    p99: median(runs.map((r) => r[kind].p99)),
    cpuPerRequest: median(runs.map((r) => r[kind].cpuPerRequest)),
    clientCpuPerRequest: median(runs.map((r) => r[kind].clientCpuPerRequest)),
  });
  return {
    runs,
    medians: {
      kable: medianOf('kable'),
      'kable-tls': medianOf('kable-tls'),
      'nest-tcp': medianOf('nest-tcp'),
      raw: medianOf('raw'),
    },
    ratios: {
      throughputVsNest: median(runs.map((r) => r.kable.throughput / r['nest-tcp'].throughput)),
      throughputVsRaw: median(runs.map((r) => r.kable.throughput / r.raw.throughput)),
      p50VsNest: median(runs.map((r) => r.kable.p50 / r['nest-tcp'].p50)),
      cpuVsNest: median(runs.map((r) => r.kable.cpuPerRequest / r['nest-tcp'].cpuPerRequest)),
      clientCpuVsNest: median(
        runs.map((r) => r.kable.clientCpuPerRequest / r['nest-tcp'].clientCpuPerRequest),
      ),
      tlsVsPlain: median(runs.map((r) => r['kable-tls'].throughput / r.kable.throughput)),
    },
  };
}
