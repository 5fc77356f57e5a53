import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// The library's files import downwards only: a circle (even through `import type`) means two files that
// cannot be read, tested or moved one without the other.
const root = resolve('lib');

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every relative module a file imports or re-exports, static, type-only or dynamic, as a path. */
export function importsOf(file: string, source: string): string[] {
  const specifiers = [
    ...source.matchAll(/^\s*(?:import|export)\b[^'";]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/gm),
    ...source.matchAll(/^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gm),
    ...source.matchAll(/\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g),
  ].map((match) => match[1]);
  return specifiers.map((specifier) => resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
}

/** Each circle once, as the files it passes through, starting from its first file in path order. */
export function circles(graph: Map<string, string[]>): string[][] {
  const found = new Map<string, string[]>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') {
        const loop = stack.slice(stack.indexOf(next));
        const first = loop.indexOf([...loop].sort()[0]);
        const normal = [...loop.slice(first), ...loop.slice(0, first)];
        found.set(normal.join(' -> '), normal);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return [...found.values()];
}

describe('lib/ import graph', () => {
  it('has no circle', () => {
    const files = sources(root);
    const graph = new Map(files.map((file) => [file, importsOf(file, readFileSync(file, 'utf8'))]));
    const named = circles(graph).map((loop) => loop.map((file) => relative(root, file)).join(' -> '));
    expect(named).toEqual([]);
  });

  it('finds a circle through type-only imports', () => {
    const a = resolve(root, 'node/a.ts');
    const b = resolve(root, 'node/b.ts');
    const c = resolve(root, 'node/c.ts');
    const graph = new Map([
      [a, importsOf(a, "import { x } from './b.js';\n")],
      [b, importsOf(b, "import type {\n  Y,\n} from './c.js';\n")],
      [c, importsOf(c, "export * from './a.js';\n")],
    ]);
    expect(circles(graph)).toEqual([[a, b, c]]);
  });
});
