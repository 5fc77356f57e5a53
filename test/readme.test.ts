import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';

// The README's TypeScript examples are regions of sample/readme/examples.ts, which `npm run typecheck`
// compiles against the library: an example that drifts from the API fails there, one that drifts from
// the file fails here.
function dedent(lines: string[]): string {
  const indent = Math.min(
    ...lines.filter((line) => line.trim() !== '').map((line) => line.length - line.trimStart().length),
  );
  return lines
    .map((line) => line.slice(indent))
    .join('\n')
    .trim();
}

export function regions(source: string): Map<string, string> {
  const found = new Map<string, string>();
  const pattern = /^\s*\/\/ #region (\S+)\n([\s\S]*?)^\s*\/\/ #endregion \1$/gm;
  for (const match of source.matchAll(pattern))
    found.set(match[1], dedent(match[2].replace(/\n$/, '').split('\n')));
  return found;
}

describe('README examples', () => {
  it('are each a region of sample/readme/examples.ts, word for word', () => {
    const readme = readFileSync('README.md', 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1].trim());
    const examples = [...regions(readFileSync('sample/readme/examples.ts', 'utf8')).values()];
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    for (const block of blocks) expect(examples).toContain(block);
  });
});
