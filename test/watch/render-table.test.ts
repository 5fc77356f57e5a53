import { describe, expect, it } from '@jest/globals';
import type { WatchedNode } from '../../lib/watch/cluster-watcher.js';
import { PROTOCOL_VERSION } from '../../lib/node/protocol-version.js';
import { renderTable } from '../../lib/watch/render-table.js';

const node = (iid: string, lastSeen: number): WatchedNode => ({
  id: 'math',
  iid,
  state: 'RUNNING',
  host: '127.0.0.1',
  port: 4000,
  hostname: 'h',
  pid: 1,
  since: 0,
  lastSeen,
});

describe('renderTable', () => {
  it('marks the nodes a caller finds unresponsive and those silent past silentAfter', () => {
    const now = Date.now();
    const table = renderTable(
      [node('aaaaaaaa-1', now), node('bbbbbbbb-2', now - 4200), node('cccccccc-3', now)],
      {
        unresponsive: new Set(['bbbbbbbb-2']),
        silentAfter: 3750,
      },
    );
    const lines = table.split('\n');
    expect(lines[2]).toMatch(/aaaaaaaa\s+RUNNING\s+127/);
    expect(lines[3]).toMatch(/bbbbbbbb\s+RUNNING, unresponsive, silent 4\.\d s/);
    expect(lines[4]).toMatch(/cccccccc\s+RUNNING\s+127/);
  });

  it('marks a node of another major protocol version as incompatible, naming its version', () => {
    const now = Date.now();
    const table = renderTable([
      { ...node('aaaaaaaa-1', now), protocol: { major: PROTOCOL_VERSION.major, minor: 9 } },
      { ...node('bbbbbbbb-2', now), protocol: { major: PROTOCOL_VERSION.major + 1, minor: 2 } },
    ]);
    const lines = table.split('\n');
    expect(lines[2]).toMatch(/aaaaaaaa\s+RUNNING\s+127/);
    expect(lines[3]).toMatch(
      new RegExp(`bbbbbbbb\\s+RUNNING, incompatible v${PROTOCOL_VERSION.major + 1}\\.2\\s+127`),
    );
  });

  it("marks the replicas a caller sends only probes to, with the reason (a client's excludedReplicas())", () => {
    const now = Date.now();
    const table = renderTable([node('aaaaaaaa-1', now), node('bbbbbbbb-2', now), node('cccccccc-3', now)], {
      excluded: new Map([
        ['aaaaaaaa-1', 'latency'],
        ['cccccccc-3', 'failures'],
      ]),
    });
    const lines = table.split('\n');
    expect(lines[2]).toMatch(/aaaaaaaa\s+RUNNING, slow: probes only\s+127/);
    expect(lines[3]).toMatch(/bbbbbbbb\s+RUNNING\s+127/);
    expect(lines[4]).toMatch(/cccccccc\s+RUNNING, ejected: failing\s+127/);
  });
});
