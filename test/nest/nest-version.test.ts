import { describe, expect, it } from '@jest/globals';
import { runFixture } from '../support/processes.js';

// Proves which Nest major a suite really runs against: 12 by default, 11 under `npm run test:nest11`,
// in the Jest worker and in the child processes alike.
const expected = process.env.KABLE_NEST_COMPAT ?? '12';

describe('Nest major under test', () => {
  it(`loads @nestjs/microservices ${expected}.x in the test process`, async () => {
    // setOnDispatchHook arrived in Nest 12: its presence tells which copy was really loaded.
    const { ClientProxy } = await import('@nestjs/microservices');
    expect(typeof (ClientProxy.prototype as { setOnDispatchHook?: unknown }).setOnDispatchHook).toBe(
      expected === '12' ? 'function' : 'undefined',
    );
  });

  it(`loads @nestjs/core ${expected}.x in child processes`, async () => {
    const child = runFixture('test/nest/fixtures/nest-version.ts', []);
    const { version } = await child.next('version');
    expect(String(version).split('.')[0]).toBe(expected);
  });
});
