// Issue 32, scenario 1: three replicas as processes with a 2 ms handler, one of them 5x slower (10 ms),
// and a sequential caller. Not part of `npm run bench` (about a minute on its own):
//   node --import ./scripts/register-ts.js bench/balancing.ts
// Prints p50/p99/p99.9 of calls after the first 200, each replica's share of them and the failures, for
// all-healthy replicas (the reference p99) and for one slow replica, with each `balance`.
import { randomInt } from 'node:crypto';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../lib/nest/kable.client.js';
import { quantile, run } from './support.js';

const WARM_UP = 200;
const CALLS = 3000;

interface Figures {
  p50: number;
  p99: number;
  p999: number;
  /** Share of the calls after warm-up that each replica served, slow one last. */
  shares: number[];
  failed: number;
}

async function scenario(slowMs: number, balance: 'round-robin' | 'least-latency'): Promise<Figures> {
  const discovery = {
    mode: 'multicast',
    address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`,
    port: randomInt(20_000, 60_000),
    interface: '127.0.0.1',
  };
  const options = JSON.stringify({ id: 'uneven', replica: true, host: '127.0.0.1', discovery });
  const delays = [2, 2, slowMs];
  const replicas = delays.map((ms) => run('bench/servers/uneven-service.ts', [String(ms), options]));
  await Promise.all(replicas.map((r) => r.next('ready')));
  const client = new KableClientProxy({
    host: '127.0.0.1',
    target: 'uneven',
    discovery: discovery as never,
    balance,
    // What scenario 1 measures: slow replicas left out (opt-in in this release).
    excludeUnhealthy: true,
  });
  const served = async () => {
    const lines = replicas.map((r) => r.next('served'));
    for (const r of replicas) r.send('stats');
    return (await Promise.all(lines)).map((l) => l.served as number);
  };
  try {
    await client.whenServed('work', { count: 3, timeout: 20_000 });
    let failed = 0;
    const call = async (): Promise<number> => {
      const start = performance.now();
      await firstValueFrom(client.send('work', {})).catch(() => failed++);
      return performance.now() - start;
    };
    for (let i = 0; i < WARM_UP; i++) await call();
    const before = await served();
    const times: number[] = [];
    for (let i = 0; i < CALLS; i++) times.push(await call());
    const after = await served();
    return {
      p50: quantile(times, 0.5),
      p99: quantile(times, 0.99),
      p999: quantile(times, 0.999),
      shares: after.map((n, i) => (n - before[i]) / CALLS),
      failed,
    };
  } finally {
    await client.close();
    await Promise.all(replicas.map((r) => r.stop()));
  }
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);
const row = (name: string, f: Figures) =>
  `| ${name} | ${fmt(f.p50)} | ${fmt(f.p99)} | ${fmt(f.p999)} | ${f.shares.map((s) => `${fmt(s * 100, 1)}%`).join(' / ')} | ${f.failed} |`;

const healthy = await scenario(2, 'round-robin');
const slowRoundRobin = await scenario(10, 'round-robin');
const slowLeastLatency = await scenario(10, 'least-latency');
process.stdout.write(
  [
    `| sequential caller, ${CALLS} calls after ${WARM_UP} | p50 ms | p99 ms | p99.9 ms | shares (slow one last) | failed |`,
    '| --- | ---: | ---: | ---: | --- | ---: |',
    row('all healthy (2 ms), round-robin', healthy),
    row('one 10 ms, round-robin (default)', slowRoundRobin),
    row('one 10 ms, least-latency', slowLeastLatency),
    '',
    `p99 with the slow replica / all healthy: round-robin ${fmt(slowRoundRobin.p99 / healthy.p99)}, least-latency ${fmt(slowLeastLatency.p99 / healthy.p99)}`,
    '',
  ].join('\n'),
);
