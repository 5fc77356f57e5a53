import { describe, expect, it } from '@jest/globals';
import { runFixture } from '../support/processes.js';

/** Runs a retention fixture in a process of its own, started with --expose-gc; resolves with its report. */
async function retention(fixturePath: string): Promise<Record<string, unknown>> {
  const fixture = runFixture(fixturePath, [], 20_000, undefined, ['--expose-gc']);
  const result = await fixture.ready;
  await fixture.exited;
  return result;
}

describe('frame decoder memory', () => {
  it('lets go of each received chunk once its frames are delivered, also when frames span chunks', async () => {
    // In a process of its own, started with --expose-gc: what survives forced collections is what the
    // decoder keeps.
    const result = await retention('test/data-plane/fixtures/decoder-retention.ts');
    expect(result.delivered).toBe(59);
    expect(result.chunks).toBeGreaterThan(140);
    // Only the chunks holding the unfinished last frame (10 KiB over 4 KiB chunks: at most 4).
    expect(result.pendingBytes).toBeGreaterThan(0);
    expect(result.alive).toBeLessThanOrEqual(4);
  });

  it('keeps no large frame alive once the values decoded from it are dropped', async () => {
    // The codec keeps a view of its last input until its next decode: a connection's codec and the one
    // every connection shares each kept the last large frame (1 MiB here) for as long as no other frame
    // went through them.
    const result = await retention('test/data-plane/fixtures/large-frame-retention.ts');
    expect(result.delivered).toBe(3);
    expect(result.pendingBytes).toBe(0);
    expect(result.kept).toEqual({ connection: false, shared: false, sharedWithMetadata: false });
  });
});
