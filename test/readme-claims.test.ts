import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MAX_FRAME_SIZE } from '../lib/data-plane/frames.js';
import { CLIENT_DEFAULTS, SERVER_DEFAULTS } from '../lib/nest/kable.options.js';
import type { KableNode } from '../lib/node/kable-node.js';
import { DEFAULTS } from '../lib/node/options.js';
import { OverloadMonitor } from '../lib/node/overload-monitor.js';
import { MemoryCluster } from './support/memory-cluster.js';

/** A guide's text with its line breaks and runs of spaces made single spaces, for matching prose. */
function prose(file: string): string {
  return readFileSync(file, 'utf8').replace(/\s+/g, ' ');
}

/** The default cell of `option`'s row in docs/configuration.md. */
function documentedDefault(option: string): string {
  const row = readFileSync('docs/configuration.md', 'utf8')
    .split('\n')
    .find((line) => line.startsWith(`| \`${option}\` `));
  if (row === undefined) throw new Error(`docs/configuration.md has no row for ${option}`);
  return row.split('|')[2].trim();
}

// Documented statements (once the README's, now in docs/) that no behavioural test pins down by number:
// the options' defaults, the optional peers, the repeated DOWN. Each is checked against the library and
// against the guide that states it, so a change to either fails here.
describe('documented claims', () => {
  it('option defaults are the ones in the docs (configuration.md and concepts.md)', () => {
    expect(DEFAULTS).toMatchObject({
      advertiseInterval: 3000,
      nodeTimeoutFactor: 3.5,
      maxUpdatesPerSecond: 20,
      pickTimeout: 300_000,
      maxPickWaiters: 10_000,
      namespace: 'default',
      discoveryPort: 5000,
    });
    expect(SERVER_DEFAULTS).toEqual({ drainTimeout: 10_000, leaveGrace: 500 });
    expect(CLIENT_DEFAULTS).toMatchObject({
      id: 'kable-client',
      pickTimeout: 10_000,
      timeout: 30_000,
      retries: 2,
    });
    expect(DEFAULT_MAX_FRAME_SIZE).toBe(16 * 1024 * 1024);
    // busy: checks every 500 ms, back to RUNNING under 0.5 x the limit for 2 checks in a row.
    const monitor = new OverloadMonitor({} as KableNode, { maxEventLoopDelayMs: 200 }) as unknown as Record<
      string,
      number
    >;
    expect({
      checkInterval: monitor.checkInterval,
      recoverNs: monitor.recoverNs,
      recoverChecks: monitor.recoverChecks,
    }).toEqual({
      checkInterval: 500,
      recoverNs: 0.5 * 200 * 1e6,
      recoverChecks: 2,
    });
    expect({
      checkInterval: documentedDefault('busy.checkInterval'),
      recoverRatio: documentedDefault('busy.recoverRatio'),
      recoverChecks: documentedDefault('busy.recoverChecks'),
      nodeTimeout: documentedDefault('discovery.nodeTimeout'),
    }).toEqual({
      checkInterval: '`500` ms',
      recoverRatio: '`0.5`',
      recoverChecks: '`2`',
      nodeTimeout: '3.5 × `advertiseInterval` (10500 ms)',
    });
    const concepts = prose('docs/concepts.md');
    expect(concepts).toContain('every `checkInterval` (default 500 ms)');
    expect(concepts).toContain(
      'under `recoverRatio` × the limit (default 0.5) for `recoverChecks` checks in a row (default 2)',
    );
  });

  it('ioredis is loaded only by the redis backend, at start; @nestjs/terminus is never imported', () => {
    const files = readdirSync('lib', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const importing = (name: string) =>
      files.filter((file) =>
        new RegExp(`(from|import\\()\\s*'${name}'`).test(readFileSync(join('lib', file), 'utf8')),
      );
    expect(importing('ioredis')).toEqual([join('discovery', 'redis.transport.ts')]);
    expect(readFileSync('lib/discovery/redis.transport.ts', 'utf8')).not.toMatch(
      /^import .* from 'ioredis'/m,
    );
    expect(importing('@nestjs/terminus')).toEqual([]);
    const install = prose('docs/getting-started.md');
    expect(install).toContain('`ioredis` (loaded only in `redis` discovery mode');
    expect(install).toContain(
      '`@nestjs/terminus` (whose result format `KableHealthIndicator` returns; never imported)',
    );
    expect(prose('docs/operations.md')).toContain('Terminus is not a dependency');
  });

  it('a node going down announces DOWN three times (UDP may lose one), and nothing else', async () => {
    expect(prose('docs/operations.md')).toContain('announce DOWN (three times, as UDP may lose one)');
    expect(prose('docs/concepts.md')).toContain('`unregister`, three times, when it goes down');
    expect(prose('docs/deployment.md')).toContain('`unregister` three times when it goes down');
    const cluster = new MemoryCluster();
    try {
      const node = await cluster.up('leaving', { advertiseInterval: 60_000 });
      const before = node.stats().advertsSent;
      await node.down();
      expect(node.stats().advertsSent - before).toBe(3);
    } finally {
      await cluster.close();
    }
  });
});
