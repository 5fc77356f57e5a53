import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { regions } from './support/code-regions.js';

// The README's TypeScript examples are regions of sample/readme/examples.ts, which `npm run typecheck`
// compiles against the library: an example that drifts from the API fails there, one that drifts from
// the file fails here.
describe('README examples', () => {
  it('are each a region of sample/readme/examples.ts, word for word', () => {
    const readme = readFileSync('README.md', 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1].trim());
    const examples = [...regions(readFileSync('sample/readme/examples.ts', 'utf8')).values()];
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    for (const block of blocks) expect(examples).toContain(block);
  });
});
