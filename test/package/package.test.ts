import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { runFixture } from '../support/processes.js';

// What users install: the two builds (`npm run build`), the packed file list and both builds in one
// process. The consumer apps of test/consumers/ then install the packed tarball itself.
const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as {
  exports: Record<string, unknown>;
  bin: Record<string, string>;
  engines: { node: string };
};

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [relative('lib', path).replace(/\.ts$/, '')] : [];
  });
}

function newest(paths: string[]): number {
  return Math.max(...paths.map((path) => statSync(path).mtimeMs));
}

// CI builds just before the tests; build again only when a source is newer than the build (or there is none).
beforeAll(() => {
  const built = ['dist/esm/index.js', 'dist/cjs/index.js', 'dist/cjs/package.json'];
  const inputs = [
    ...sources('lib').map((source) => `lib/${source}.ts`),
    'scripts/build.js',
    'tsconfig.json',
    'tsconfig.build.json',
    'tsconfig.build-cjs.json',
  ];
  const stale =
    !built.every((path) => existsSync(path)) ||
    newest(inputs) > Math.min(...built.map((path) => statSync(path).mtimeMs));
  if (stale) execFileSync(process.execPath, ['scripts/build.js'], { stdio: 'pipe' });
}, 180_000);

describe('npm pack', () => {
  const packed = () => {
    const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return (JSON.parse(output) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path);
  };

  it('holds both builds with their declarations, the README and the LICENSE, and nothing else', () => {
    const files = packed();
    const expected = [
      'LICENSE',
      'README.md',
      'package.json',
      'dist/esm/package.json',
      'dist/cjs/package.json',
    ];
    for (const format of ['esm', 'cjs'])
      for (const source of sources('lib'))
        expected.push(`dist/${format}/${source}.js`, `dist/${format}/${source}.d.ts`);
    expect([...files].sort()).toEqual(expected.sort());
  });

  it('points every entry of package.json at a packed file', () => {
    const files = new Set(packed());
    const targets = [
      ...JSON.stringify(manifest.exports).matchAll(/"(\.\/[^"]+)"/g),
      ...Object.values(manifest.bin).map((bin) => [bin, bin]),
    ].map((match) => match[1].replace(/^\.\//, ''));
    expect(targets.filter((target) => target !== 'package.json' && !files.has(target))).toEqual([]);
    expect(targets).toEqual(
      expect.arrayContaining([
        'dist/esm/index.js',
        'dist/esm/index.d.ts',
        'dist/cjs/index.js',
        'dist/cjs/index.d.ts',
      ]),
    );
  });
});

describe('the two builds', () => {
  it('resolve by module system: require gets CommonJS, import gets ESM', () => {
    const require = createRequire(import.meta.url);
    expect(relative('.', require.resolve('nestjs-kable'))).toBe('dist/cjs/index.js');
    // (Loading it is the fixture's part below: Jest's own require cannot load Nest 12's ES modules.)
    expect(readFileSync('dist/cjs/index.js', 'utf8')).toMatch(/^"use strict";/);
    expect(readFileSync('dist/esm/index.js', 'utf8')).toMatch(/^export \{/m);
    // The optional Redis client is still loaded lazily in CommonJS, where `import()` becomes require().
    expect(readFileSync('dist/cjs/discovery/redis.transport.js', 'utf8')).toMatch(/require\('ioredis'\)/);
    expect(existsSync('dist/cjs/cli/kable.js') && existsSync('dist/esm/cli/kable.js')).toBe(true);
  });

  it('agree across copies when an app loads both in one process', async () => {
    const fixture = runFixture('test/package/fixtures/two-copies.ts', [], 30_000);
    const { result } = await fixture.next('result');
    await fixture.exited;
    expect(result).toEqual({
      copies: true,
      served: { contextIsCjsKableContext: true, stateWhileBusy: 'DOING_SOMETHING', nodeIsCjsKableNode: true },
      stateAfter: 'RUNNING',
      errors: {
        esmErrorIsCjsKableError: true,
        cjsErrorIsEsmDataPlaneError: true,
        cjsStateErrorIsEsmStateError: true,
        cjsOptionsErrorIsEsmDataPlaneError: false,
        cjsKableErrorIsEsmStateError: false,
        plainErrorIsKableError: false,
      },
      records: { esmRecordIsCjsKableRecord: true },
      subclasses: { kableErrorIsOwnError: false, ownErrorIsCjsKableError: true },
      signals: { sigtermListeners: 1 },
    });
  });
});
