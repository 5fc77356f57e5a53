import { describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { loopbackDiscovery } from './support/loopback-discovery.js';
import { runFixture } from './support/processes.js';
import { RedisServer, redisServerPath } from './support/redis-server.js';
import { itNeeding } from './support/requirements.js';

// The README's sample, run as a user runs it (in its bounded script, with --watch held open so that
// `kable watch --json` can look at it), on a discovery group of its own.
describe('the sample cluster', () => {
  it('runs its script to a summary that shows the balancer at work, and kable watch sees every node', async () => {
    const discovery = loopbackDiscovery(200);
    const env = { ...process.env, KABLE_SAMPLE_DISCOVERY: JSON.stringify(discovery) };
    const sample = spawn(
      process.execPath,
      ['--import', './scripts/register-ts.js', 'sample/start.ts', '--watch', '--json'],
      {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    try {
      await check(sample, [
        '--mode=multicast',
        `--address=${discovery.address}`,
        `--port=${discovery.port}`,
        '--interface=127.0.0.1',
        '--interval=200',
      ]);
    } finally {
      if (sample.exitCode === null) sample.kill('SIGKILL');
    }
  }, 90_000);

  itNeeding(
    redisServerPath() === undefined
      ? 'no redis-server on this machine (apt-get install redis-server)'
      : undefined,
    'the sample-with-Redis test',
  )(
    'runs the same with discovery through Redis, with one flag',
    async () => {
      const redis = new RedisServer();
      await redis.start();
      const sample = spawn(
        process.execPath,
        [
          '--import',
          './scripts/register-ts.js',
          'sample/start.ts',
          '--watch',
          '--json',
          `--redis=${redis.url}`,
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      try {
        await check(sample, ['--mode=redis', `--url=${redis.url}`, '--interval=500']);
      } finally {
        if (sample.exitCode === null) sample.kill('SIGKILL');
        await redis.stop();
      }
    },
    90_000,
  );
});

async function check(sample: ChildProcessWithoutNullStreams, watchArgs: string[]) {
  let stderr = '';
  sample.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let output = '';
  const watching = new Promise<void>((resolve, reject) => {
    createInterface({ input: sample.stdout }).on('line', (line) => {
      output += line + '\n';
      if (line.includes('"watching"')) resolve();
    });
    sample.on('exit', () => reject(new Error(`the sample exited early:\n${stderr}`)));
  });
  await watching;

  const watch = runFixture('lib/cli/kable.ts', ['watch', '--json', ...watchArgs, '--wait=1000']);
  const snapshot = (await watch.next('nodes')) as { nodes: Array<{ id: string; state: string }> };
  const byId = (id: string) => snapshot.nodes.filter((node) => node.id === id).map((node) => node.state);
  expect(byId('gateway')).toEqual(['RUNNING']);
  expect(byId('math')).toEqual(['RUNNING', 'RUNNING']);
  expect(byId('orders')).toEqual(['RUNNING', 'RUNNING']);

  const exited = new Promise((resolve) => sample.on('exit', resolve));
  sample.kill('SIGINT');
  await exited;
  const summaryLine = output.split('\n').find((line) => line.startsWith('{"summary"'));
  if (summaryLine === undefined) throw new Error(`no summary in the sample's output:\n${output}`);
  const { summary } = JSON.parse(summaryLine) as {
    summary: {
      requests: { sent: number; ok: number; failed: number; errors: Record<string, number> };
      servedPerReplica: Record<string, number>;
      busy: { servedWhileBusy: number };
      stopped: { servedAfterStop: number };
      killed: { failedAroundKill: number };
      affinity: { customersByReplica: Record<string, string[]>; customersOnSeveralReplicas: number };
    };
  };
  // Every replica served, including the one that joined late.
  expect(Object.keys(summary.servedPerReplica).sort()).toEqual([
    'math#1',
    'math#2',
    'math#3',
    'math#4',
    'orders#1',
    'orders#2',
  ]);
  for (const served of Object.values(summary.servedPerReplica)) expect(served).toBeGreaterThan(0);
  // Busy: skipped the whole time. Stopped: only what was already in flight (four callers at most).
  expect(summary.busy.servedWhileBusy).toBe(0);
  expect(summary.stopped.servedAfterStop).toBeLessThanOrEqual(4);
  // Only requests in flight on the killed replica failed, with KABLE_PEER_LOST: four callers, each of whose
  // requests reaches math through at most two clients (the gateway's, and the orders service's).
  expect(summary.requests.failed).toBe(summary.killed.failedAroundKill);
  expect(summary.requests.failed).toBeLessThanOrEqual(8);
  expect(Object.keys(summary.requests.errors).filter((code) => code !== 'KABLE_PEER_LOST')).toEqual([]);
  expect(summary.requests.ok + summary.requests.failed).toBe(summary.requests.sent);
  // Orders are keyed by customer: each of the 15 customers' orders stayed on one orders replica (round
  // robin would have given each customer both in turn).
  const customers = Object.values(summary.affinity.customersByReplica);
  expect(customers.flat().sort()).toEqual(Array.from({ length: 15 }, (_, i) => `c-${i}`).sort());
  expect(summary.affinity.customersOnSeveralReplicas).toBe(0);
}
