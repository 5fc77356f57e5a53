import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MAX_FRAME_SIZE } from '../lib/data-plane/frames.js';
import { CLIENT_DEFAULTS, SERVER_DEFAULTS } from '../lib/nest/kable.options.js';
import type { KableNode } from '../lib/node/kable-node.js';
import { DEFAULTS } from '../lib/node/options.js';
import { OverloadMonitor } from '../lib/node/overload-monitor.js';
import { MemoryCluster } from './support/memory-cluster.js';

// README statements that no behavioural test pins down by number: the option tables' defaults, the
// optional peers, the repeated DOWN.
describe('README claims', () => {
  it('option defaults are the ones in the README tables', () => {
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
  });

  it('a node going down announces DOWN three times (UDP may lose one), and nothing else', async () => {
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
