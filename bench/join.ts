import { randomInt } from 'node:crypto';
import { RedisServer, redisServerPath } from '../test/support/redis-server.js';
import { median, quantile, run } from './support.js';

export interface FirstReply {
  p50: number;
  p99: number;
  /** Time until every replica was known, median. */
  allKnown: number;
  /** The reference, median: a client whose node already knows the cluster (new connection, one request). */
  known: number;
  /** Median of the per-run ratios, fresh caller / reference: what joining adds. */
  ratio: number;
  runs: number;
}

const REPLICAS = 3;

/**
 * "First reply after start": three math replicas up for a second with the default timings
 * (advertiseInterval 3000 ms), then fresh callers one after another, each a new KableClientProxy with a
 * node of its own, timing connect() to its first reply. Callers share one process (a first, uncounted
 * one warms it up) and are 300 ms apart, more than a replica's pace of one join answer per 250 ms.
 */
export async function firstReplyAfterStart(runs: number): Promise<Record<string, FirstReply>> {
  const results: Record<string, FirstReply> = {};
  const redis = redisServerPath() === undefined ? undefined : new RedisServer();
  await redis?.start();
  const base = randomInt(20_000, 50_000);
  const layouts: Record<string, { replica: (i: number) => object; caller: (run: number) => object }> = {
    broadcast: {
      replica: () => ({ mode: 'broadcast', address: '127.255.255.255', port: base - 1 }),
      caller: () => ({ mode: 'broadcast', address: '127.255.255.255', port: base - 1 }),
    },
    multicast: {
      replica: () => ({ mode: 'multicast', address: '239.255.77.7', port: base - 2, interface: '127.0.0.1' }),
      caller: () => ({ mode: 'multicast', address: '239.255.77.7', port: base - 2, interface: '127.0.0.1' }),
    },
    unicast: {
      replica: (i) => ({
        mode: 'unicast',
        interface: '127.0.0.1',
        port: base + i,
        peers: [0, 1, 2].map((j) => `127.0.0.1:${base + j}`),
      }),
      caller: (n) => ({
        mode: 'unicast',
        interface: '127.0.0.1',
        port: base + 100 + n,
        peers: [`127.0.0.1:${base}`],
      }),
    },
  };
  if (redis !== undefined) {
    layouts.redis = {
      replica: () => ({ mode: 'redis', url: redis.url }),
      caller: () => ({ mode: 'redis', url: redis.url }),
    };
  }
  try {
    for (const [mode, layout] of Object.entries(layouts)) {
      const replicas = Array.from({ length: REPLICAS }, (_, i) =>
        run('test/nest/fixtures/run-service.ts', [
          'math',
          JSON.stringify({ id: 'math', replica: true, host: '127.0.0.1', discovery: layout.replica(i) }),
        ]),
      );
      try {
        await Promise.all(replicas.map((replica) => replica.next('ready')));
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const options = Array.from({ length: runs + 1 }, (_, n) => ({
          host: '127.0.0.1',
          discovery: layout.caller(n),
        }));
        const caller = run('test/discovery/fixtures/first-reply.ts', [
          JSON.stringify(options),
          String(REPLICAS),
          '300',
        ]);
        const { results: lines } = (await caller.next('ready')) as {
          results: Array<{ firstReply: number; allKnown: number; knownFirstReply: number }>;
        };
        await caller.stop();
        const counted = lines.slice(1);
        const first = counted.map((line) => line.firstReply);
        results[mode] = {
          p50: median(first),
          p99: quantile(first, 0.99),
          allKnown: median(counted.map((line) => line.allKnown)),
          known: median(counted.map((line) => line.knownFirstReply)),
          ratio: median(counted.map((line) => line.firstReply / line.knownFirstReply)),
          runs: counted.length,
        };
      } finally {
        await Promise.all(replicas.map((replica) => replica.stop()));
      }
    }
  } finally {
    await redis?.stop();
  }
  return results;
}

// Standalone: node --import ./scripts/register-ts.js bench/join.ts [runs]
if (process.argv[1]?.endsWith('bench/join.ts')) {
  const results = await firstReplyAfterStart(Number(process.argv[2] ?? 40));
  process.stdout.write(JSON.stringify(results) + '\n');
  process.exit(0);
}
