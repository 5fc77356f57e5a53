import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes, randomInt } from 'node:crypto';
import { kable } from '../../lib/kable.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { KableOptions } from '../../lib/node/options.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

// `kable watch` as a user runs it: the CLI in a child process, listening to real UDP adverts from nodes
// in this process.
const CLI = 'lib/cli/kable.ts';
const INTERVAL = 100;

const nodes: KableNode[] = [];
const watchers: ChildFixture[] = [];

afterEach(async () => {
  for (const watcher of watchers.splice(0)) {
    watcher.child.kill('SIGTERM');
    await watcher.exited;
  }
  await Promise.all(nodes.splice(0).map((node) => node.down()));
});

async function up(id: string, options: KableOptions): Promise<KableNode> {
  const node = kable(id, { host: '127.0.0.1', ...options });
  nodes.push(node);
  await node.up();
  return node;
}

function watch(args: string[]): ChildFixture {
  const watcher = runFixture(CLI, ['watch', `--interval=${INTERVAL}`, ...args]);
  watchers.push(watcher);
  return watcher;
}

interface Snapshot {
  nodes: Array<{ id: string; iid: string; state: string; reason?: string }>;
  stats: Record<string, number>;
}

async function snapshot(args: string[]): Promise<Snapshot> {
  return (await watch(['--json', '--wait=1000', ...args]).next('nodes')) as unknown as Snapshot;
}

function multicastArgs(discovery: ReturnType<typeof loopbackDiscovery>): string[] {
  return [
    '--mode=multicast',
    `--address=${discovery.address}`,
    `--port=${discovery.port}`,
    `--interface=${discovery.interface}`,
  ];
}

describe('kable watch', () => {
  it('reads a sealed cluster with --key, and sees nothing (counting the drops) with another key', async () => {
    const discovery = loopbackDiscovery(INTERVAL);
    const key = randomBytes(32).toString('base64');
    const node = await up('sealed', { key, discovery });
    const [right, wrong, none] = await Promise.all([
      snapshot([...multicastArgs(discovery), `--key=${key}`]),
      snapshot([...multicastArgs(discovery), `--key=${randomBytes(32).toString('base64')}`]),
      snapshot(multicastArgs(discovery)),
    ]);
    expect(right.nodes).toEqual([expect.objectContaining({ id: 'sealed', iid: node.iid, state: 'RUNNING' })]);
    expect(wrong.nodes).toEqual([]);
    expect(none.nodes).toEqual([]);
    // Several adverts were heard in the second and dropped, each counted.
    for (const blind of [wrong, none]) {
      const dropped = Object.entries(blind.stats)
        .filter(([name]) => name.startsWith('dropped'))
        .reduce((sum, [, n]) => sum + n, 0);
      expect(dropped).toBeGreaterThanOrEqual(3);
    }
  });

  it('hears, in unicast mode, the nodes that list it in their peers', async () => {
    const port = () => randomInt(20_000, 60_000);
    const watcherPort = port();
    const unicast = (peers: string[]) => ({
      mode: 'unicast' as const,
      port: port(),
      interface: '127.0.0.1',
      peers,
      advertiseInterval: INTERVAL,
    });
    const listing = await up('listing', { discovery: unicast([`127.0.0.1:${watcherPort}`]) });
    // A node of another unicast cluster, seeded with an address nobody listens on.
    await up('apart', { discovery: unicast([`127.0.0.1:${port()}`]) });
    const seen = await snapshot(['--mode=unicast', `--port=${watcherPort}`, '--interface=127.0.0.1']);
    expect(seen.nodes.map((node) => node.iid)).toEqual([listing.iid]);
    // It only listens: no adverts, and no gossip of the addresses it heard from.
    expect(seen.stats).toMatchObject({ datagramsSent: 0, gossipSent: 0 });
    expect(seen.stats.datagramsReceived).toBeGreaterThanOrEqual(3);
  });

  it("draws the live table, then the node's new state and reason", async () => {
    const discovery = loopbackDiscovery(INTERVAL);
    const node = await up('table', { discovery });
    const watcher = watch(multicastArgs(discovery));
    let output = '';
    const frames = (): string[] => output.split('\x1b[2J\x1b[H').filter((frame) => frame !== '');
    const drawn = (pattern: RegExp) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const frame = frames().find((f) => pattern.test(f));
          if (frame === undefined) return;
          watcher.child.stdout?.off('data', onData);
          clearTimeout(timer);
          resolve(frame);
        };
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          check();
        };
        const timer = setTimeout(
          () => reject(new Error(`no frame matching ${pattern} in:\n${output}\n${watcher.stderr()}`)),
          10_000,
        );
        watcher.child.stdout?.on('data', onData);
        check();
      });
    const running = await drawn(/^table\s/m);
    const lines = running.trim().split('\n');
    expect(lines[0]).toMatch(/^node\s+instance\s+state\s+address\s+served\s+in flight$/);
    expect(lines[1]).toMatch(/^-+(\s+-+){5}$/);
    expect(lines[2]).toMatch(
      new RegExp(`^table\\s+${node.iid.slice(0, 8)}\\s+RUNNING\\s+127\\.0\\.0\\.1:${node.port}\\s+-\\s+-$`),
    );
    node.doing('nightly export');
    const busy = await drawn(/DOING_SOMETHING \(nightly export\)/);
    expect(busy).toMatch(
      new RegExp(`^table\\s+${node.iid.slice(0, 8)}\\s+DOING_SOMETHING \\(nightly export\\)`, 'm'),
    );
  });
});
