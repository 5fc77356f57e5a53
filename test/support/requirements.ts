import { describe, it } from '@jest/globals';

type Block = (name: string, body: () => void) => void;
type Test = (name: string, body: () => Promise<unknown>, timeout?: number) => void;

/**
 * Tests that need something from the machine (redis-server, root, `ip netns`) run only where it is.
 * Locally a missing dependency skips them with a warning that names it; in CI (`CI=true`) it fails the
 * run with the same message instead, so a green CI always means they ran.
 */
export function describeNeeding(missing: string | undefined, what: string): Block {
  if (missing === undefined) return describe;
  if (!inCi()) {
    warn(missing, what);
    return describe.skip;
  }
  return (name) =>
    describe(name, () => {
      it('has what it needs', () => fail(missing, what));
    });
}

/** The same for a single test. */
export function itNeeding(missing: string | undefined, what: string): Test {
  if (missing === undefined) return it;
  if (!inCi()) {
    warn(missing, what);
    return it.skip;
  }
  return (name) => it(name, () => fail(missing, what));
}

function inCi(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

function warn(missing: string, what: string): void {
  console.warn(`${what} skipped: ${missing} (with CI=true this fails the run)`);
}

function fail(missing: string, what: string): never {
  throw new Error(
    `${what} cannot run in CI: ${missing}. Install it (.ci/run does, as root) rather than skip.`,
  );
}
