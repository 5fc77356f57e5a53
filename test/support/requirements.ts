import { describe, it } from '@jest/globals';

/**
 * Tests that need something from the machine (redis-server, root, `ip netns`) run only where it is.
 * Locally a missing dependency skips them with a warning that names it; in CI (`CI=true`) it fails the
 * run with the same message instead, so a green CI always means they ran.
 */
export function describeNeeding(missing: string | undefined, what: string): typeof describe {
  if (missing === undefined) return describe;
  if (!inCi()) {
    warn(missing, what);
    return describe.skip;
  }
  return ((name: string) =>
    describe(name, () => {
      it('has what it needs', () => fail(missing, what));
    })) as typeof describe;
}

/** The same for a single test. */
export function itNeeding(missing: string | undefined, what: string): typeof it {
  if (missing === undefined) return it;
  if (!inCi()) {
    warn(missing, what);
    return it.skip;
  }
  return ((name: string) => it(name, () => fail(missing, what))) as typeof it;
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
