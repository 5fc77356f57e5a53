import { startNatsBroker } from './peers/nats-server.js';
import { loopbackMulticast, median, pinningAvailable, run } from './support.js';

export type Kind = 'kable' | 'kable-tls' | 'nest-tcp' | 'raw' | 'raw-corked' | 'moleculer-tcp' | 'nest-nats';
export const KINDS: Kind[] = [
  'kable',
  'kable-tls',
  'nest-tcp',
  'raw',
  'raw-corked',
  'moleculer-tcp',
  'nest-nats',
];

export interface TransportFigures {
  throughput: number;
  p50: number;
  p99: number;
  /** Server CPU time per request during the throughput phase, microseconds. */
  cpuPerRequest: number;
  /** Client CPU time per request during the throughput phase, microseconds. */
  clientCpuPerRequest: number;
}

export function loopbackDiscovery() {
  return loopbackMulticast(200);
}

/**
 * One configuration, as a fresh server and client process pair: the server on core 0 and the client on
 * core 1 unless `pinned` is false or pinning is not available (see `pinningAvailable`).
 */
export async function measure(
  kind: Kind,
  requests: number,
  env?: Record<string, string>,
  pinned = true,
): Promise<TransportFigures> {
  const discovery = JSON.stringify(loopbackDiscovery());
  // Nest's NATS transport needs a broker: a fresh one per pair, stopped even when the run fails.
  const broker = kind === 'nest-nats' ? await startNatsBroker() : undefined;
  try {
    return await measurePair(kind, requests, discovery, String(broker?.port ?? 0), env, pinned);
  } finally {
    await broker?.stop();
  }
}

async function measurePair(
  kind: Kind,
  requests: number,
  discovery: string,
  natsPort: string,
  env: Record<string, string> | undefined,
  pinned: boolean,
): Promise<TransportFigures> {
  const [serverCore, clientCore] = pinned ? [0, 1] : [undefined, undefined];
  const server = run('bench/servers/serve.ts', [kind, discovery, natsPort], env, [], serverCore);
  try {
    const { port } = await server.next('ready');
    const serverCpu = async () => {
      server.send('cpu');
      return Number((await server.next('cpu')).cpu);
    };
    const client = run(
      'bench/clients/measure.ts',
      [kind, String(port), discovery, String(requests)],
      env,
      [],
      clientCore,
    );
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

type Figure = keyof TransportFigures;
type Ratio =
  | 'throughputVsNest'
  | 'throughputVsRaw'
  | 'throughputVsCorked'
  | 'p50VsCorked'
  | 'p50VsNest'
  | 'cpuVsNest'
  | 'clientCpuVsNest'
  | 'tlsVsPlain'
  | 'throughputVsMoleculer'
  | 'p50VsMoleculer'
  | 'throughputVsNats'
  | 'p50VsNats';

/** Each ratio as [numerator, denominator, figure]: taken within one run, so both saw the same machine. */
const RATIOS: Record<Ratio, [Kind, Kind, Figure]> = {
  throughputVsNest: ['kable', 'nest-tcp', 'throughput'],
  throughputVsRaw: ['kable', 'raw', 'throughput'],
  throughputVsCorked: ['kable', 'raw-corked', 'throughput'],
  p50VsCorked: ['kable', 'raw-corked', 'p50'],
  p50VsNest: ['kable', 'nest-tcp', 'p50'],
  cpuVsNest: ['kable', 'nest-tcp', 'cpuPerRequest'],
  clientCpuVsNest: ['kable', 'nest-tcp', 'clientCpuPerRequest'],
  tlsVsPlain: ['kable-tls', 'kable', 'throughput'],
  throughputVsMoleculer: ['kable', 'moleculer-tcp', 'throughput'],
  p50VsMoleculer: ['kable', 'moleculer-tcp', 'p50'],
  throughputVsNats: ['kable', 'nest-nats', 'throughput'],
  p50VsNats: ['kable', 'nest-nats', 'p50'],
};

export interface TransportRuns {
  medians: Record<Kind, TransportFigures>;
  /** Every ratio, one value per run. */
  perRun: Record<Ratio, number[]>;
  /** The median of each ratio's per-run values. */
  ratios: Record<Ratio, number>;
  /**
   * Kable / raw corked again with both pairs left to the scheduler, one pair of each per run: what the
   * pinning changes, reported beside it. Absent when the pairs ran unpinned anyway (see `pinningAvailable`).
   */
  unpinned?: { throughput: number[]; p50: number[] };
}

/** Every configuration `repeats` times, interleaved; ratios are taken pair by pair within a run. */
export async function compareTransports(repeats: number, requests: number): Promise<TransportRuns> {
  const pinned = pinningAvailable();
  const runs: Array<Record<Kind, TransportFigures>> = [];
  const unpinned = { throughput: [] as number[], p50: [] as number[] };
  for (let i = 0; i < repeats; i++) {
    const figures = {} as Record<Kind, TransportFigures>;
    for (const kind of KINDS) figures[kind] = await measure(kind, requests);
    runs.push(figures);
    if (pinned) {
      const kable = await measure('kable', requests, undefined, false);
      const corked = await measure('raw-corked', requests, undefined, false);
      unpinned.throughput.push(kable.throughput / corked.throughput);
      unpinned.p50.push(kable.p50 / corked.p50);
    }
  }
  const medians = {} as Record<Kind, TransportFigures>;
  for (const kind of KINDS) {
    const first = runs[0][kind];
    medians[kind] = Object.fromEntries(
      Object.keys(first).map((figure) => [figure, median(runs.map((r) => r[kind][figure as Figure]))]),
    ) as unknown as TransportFigures;
  }
  const perRun = {} as Record<Ratio, number[]>;
  const ratios = {} as Record<Ratio, number>;
  for (const [name, [top, bottom, figure]] of Object.entries(RATIOS) as Array<
    [Ratio, [Kind, Kind, Figure]]
  >) {
    perRun[name] = runs.map((r) => r[top][figure] / r[bottom][figure]);
    ratios[name] = median(perRun[name]);
  }
  return { medians, perRun, ratios, unpinned: pinned ? unpinned : undefined };
}
