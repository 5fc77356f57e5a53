import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import type { WatchedNode } from '../lib/watch/cluster-watcher.js';
import { renderTable } from '../lib/watch/render-table.js';
import { READING_NOTES } from '../bench/report-notes.js';
import { regions } from './support/code-regions.js';

const readme = readFileSync('README.md', 'utf8');

/** The cells of each table row of a markdown text (the separator rows left out). */
function tableRows(markdown: string): string[][] {
  return markdown
    .split('\n')
    .filter((line) => line.startsWith('|') && !/^\|[\s|:-]+\|$/.test(line))
    .map((line) =>
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim()),
    );
}

// The README is the landing page: what Kable is, a quick start, the commands of a fresh clone, the live
// table, the headline figures and a map of docs/. Everything else is in the guides (test/docs.test.ts).
describe('README', () => {
  it('shows the quick start in its first screen, and stays short', () => {
    const lines = readme.split('\n');
    expect(lines.findIndex((line) => line === '## Quick start')).toBeLessThan(25);
    expect(lines.length).toBeLessThan(200);
  });

  // The TypeScript examples are regions of sample/readme/examples.ts, which `npm run typecheck` compiles
  // against the library: an example that drifts from the API fails there, one that drifts from the file
  // fails here.
  it('has the quick start’s service and caller, each a region of sample/readme/examples.ts, word for word', () => {
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1].trim());
    const examples = regions(readFileSync('sample/readme/examples.ts', 'utf8'));
    expect(blocks).toEqual([examples.get('quick-service'), examples.get('quick-client')]);
  });

  it('names the two commands of a fresh clone, and package.json has them', () => {
    const shell = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]);
    expect(shell).toContainEqual(expect.stringContaining('npm ci && npm start\n'));
    expect(shell).toContainEqual(expect.stringContaining('npm ci && npm test\n'));
    const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(scripts.start).toContain('sample/start.ts');
    expect(scripts.test).toContain('jest');
  });

  it('shows the live table as the sample draws it (renderTable, the same rows)', () => {
    const block = /```\n(nestjs-kable sample cluster\n[\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const table = block!.split('\n').slice(2).join('\n').trimEnd();
    const rows = table
      .split('\n')
      .slice(2)
      .map((line) => line.split(/ {2,}/));
    expect(rows.length).toBeGreaterThanOrEqual(5);
    const nodes: WatchedNode[] = [];
    const names = new Map<string, string>();
    const served = new Map<string, number>();
    const inFlight = new Map<string, number>();
    for (const [name, iid, state, address, servedCell, inFlightCell] of rows) {
      const [, value, reason] = /^(\w+)(?: \((.*)\))?$/.exec(state)!;
      const [host, port] = address.split(':');
      nodes.push({
        id: name.replace(/#\d+$/, ''),
        iid,
        state: value as WatchedNode['state'],
        reason,
        host,
        port: Number(port),
        hostname: 'sample',
        pid: 1,
        since: 0,
        lastSeen: Date.now(),
      });
      names.set(iid, name);
      if (servedCell !== '-') served.set(iid, Number(servedCell));
      if (inFlightCell !== '-') inFlight.set(iid, Number(inFlightCell));
    }
    expect(renderTable(nodes, { names, served, inFlight })).toBe(table);
  });

  it('quotes its benchmark ratios from docs/benchmarks.md, and links there', () => {
    const section = readme.slice(readme.indexOf('## Performance'), readme.indexOf('## Documentation'));
    const quoted = tableRows(section).filter(([label]) => label !== 'ratio (median of per-run ratios)');
    expect(quoted.length).toBeGreaterThanOrEqual(6);
    const measured = tableRows(readFileSync('docs/benchmarks.md', 'utf8'));
    for (const [label, value] of quoted) {
      expect({ label, value }).toEqual({
        label,
        value: measured.find(([each]) => each === label)?.[1],
      });
    }
    expect(section).toContain('](docs/benchmarks.md)');
  });

  it('left how to run and read the benchmarks to docs/benchmarks.md, which the bench writes with them', () => {
    // The README's Benchmarks prose is bench/report-notes.ts' READING_NOTES: bench/run.ts prints it into
    // docs/benchmarks.md, and the file in the repository holds it too.
    expect(READING_NOTES.join('\n')).toContain('`npm run bench` runs the same Nest handler through Kable');
    expect(readFileSync('docs/benchmarks.md', 'utf8')).toContain(READING_NOTES.join('\n'));
    expect(readFileSync('bench/run.ts', 'utf8')).toContain('...READING_NOTES,');
  });
});
