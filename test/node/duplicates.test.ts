import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { KableError } from '../../lib/node/errors.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { waitForEvent, waitUntil } from '../support/events.js';

let cluster: MemoryCluster;
afterEach(() => cluster.close());

function collectErrors(node: KableNode): KableError[] {
  const errors: KableError[] = [];
  node.on('error', (error) => errors.push(error));
  return errors;
}

const EVERY_CLOCK_BUT_DATE = [
  'hrtime',
  'nextTick',
  'performance',
  'queueMicrotask',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'setTimeout',
  'clearTimeout',
] as const;

/** up() as if the clock read `at`: only the start time (read as up() begins) sees the fake clock. */
function upAt(node: KableNode, at: number): Promise<void> {
  jest.useFakeTimers({ doNotFake: [...EVERY_CLOCK_BUT_DATE], now: at });
  try {
    return node.up();
  } finally {
    jest.useRealTimers();
  }
}

describe('duplicate ids', () => {
  // Start times set explicitly: the earlier start wins whichever came up first; in a tie (one
  // millisecond), the lower instance id does.
  it.each([
    ['the first to come up started earlier', -5000, 0],
    ['the second to come up started earlier', 0, -5000],
    ['both started in the same millisecond', 0, 0],
  ])(
    '%s: three observers and both duplicates keep the same node and each report DUPLICATE_NODE_ID',
    async (_case, firstAt, secondAt) => {
      const now = Date.now();
      cluster = new MemoryCluster();
      const observers = [cluster.node('o1'), cluster.node('o2'), cluster.node('o3')];
      const observerErrors = observers.map(collectErrors);
      for (const observer of observers) await observer.up();
      const first = cluster.node('billing');
      const firstErrors = collectErrors(first);
      await upAt(first, now + firstAt);
      await waitUntil(
        () => observers.every((o) => o.running('billing').length === 1),
        observers,
        ['peer:added'],
        5000,
        'first seen',
      );
      const second = cluster.node('billing');
      const secondErrors = collectErrors(second);
      await upAt(second, now + secondAt);
      expect([first.startedAt, second.startedAt]).toEqual([now + firstAt, now + secondAt]);
      const everyone = [...observers, first, second];
      const allErrors = [...observerErrors, firstErrors, secondErrors];
      await waitUntil(
        () => allErrors.every((errors) => errors.length >= 1),
        everyone,
        ['error', 'peer:added', 'peer:state'],
        5000,
        'every node to report the duplicate',
      );
      const firstWins = firstAt !== secondAt ? firstAt < secondAt : first.iid < second.iid;
      const [kept, ignored] = firstWins ? [first, second] : [second, first];
      for (const errors of allErrors) {
        expect(errors).toHaveLength(1);
        expect(errors[0]).toMatchObject({ code: 'DUPLICATE_NODE_ID', kept: kept.iid, ignored: ignored.iid });
      }
      for (const observer of observers) {
        expect(observer.running('billing').map((peer) => peer.iid)).toEqual([kept.iid]);
        expect(observer.peer(ignored.iid)).toBeUndefined();
      }
      // The ignored one ignores itself too: it is not in its own rotation.
      expect(ignored.running('billing').map((peer) => peer.iid)).toEqual([kept.iid]);
      // Repeated adverts do not repeat the error: let three more of the ignored node's adverts reach everyone.
      let deliveries = 0;
      await waitForEvent(
        cluster.bus,
        'delivery',
        (advert: any, _f: unknown, _t: unknown, dropped: boolean) => {
          if (advert.iid === ignored.iid && !dropped) deliveries++;
          return deliveries >= 3 * (everyone.length - 1);
        },
      );
      for (const errors of allErrors) expect(errors).toHaveLength(1);
    },
  );

  it('replicas sharing an id are not duplicates', async () => {
    cluster = new MemoryCluster();
    const observer = cluster.node('observer');
    const errors = collectErrors(observer);
    await observer.up();
    await cluster.up('math', { replica: true });
    await cluster.up('math', { replica: true });
    await cluster.up('math');
    await waitUntil(
      () => observer.running('math').length === 3,
      [observer],
      ['peer:added'],
      5000,
      'three math',
    );
    expect(errors).toEqual([]);
  });

  it('without an error listener a duplicate becomes a warning, not a crash', async () => {
    cluster = new MemoryCluster();
    const observer = await cluster.up('observer');
    const warnings: string[] = [];
    observer.on('warning', (warning) => warnings.push(warning.code));
    await cluster.up('solo');
    await cluster.up('solo');
    await waitUntil(() => warnings.includes('DUPLICATE_NODE_ID'), [observer], ['warning'], 5000, 'warning');
    expect(observer.stats().unhandledErrors).toBe(1);
  });
});
