import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { firstValueFrom, lastValueFrom, type Observable, type Subscription } from 'rxjs';
import {
  KABLE_AFFINITY_METADATA,
  KableClientProxy,
  KableOptionsError,
  KableRecord,
} from '../../lib/index.js';
import type { PeerLanes } from '../../lib/data-plane/peer-lanes.js';
import type { KeysInFlight } from '../../lib/node/keys-in-flight.js';
import { keyHash } from '../../lib/node/rendezvous.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';
import { InProcessCluster, serverOf } from './fixtures/in-process.js';
import { waitUntil } from '../support/events.js';

const nest11 = process.env.KABLE_NEST_COMPAT === '11';
// Not a multiple of 3: round robin over 3 replicas would give a key another replica each round.
const KEYS = Array.from({ length: 31 }, (_, i) => `customer-${i}`);

/** Real Nest apps over real TCP: requests and events with one affinity key go to one replica. */
describe('key affinity', () => {
  const cluster = new InProcessCluster();
  afterEach(() => cluster.close());

  async function math(count = 3): Promise<INestMicroservice[]> {
    return Promise.all(Array.from({ length: count }, () => cluster.service(MathModule, 'math')));
  }

  async function client(options: ConstructorParameters<typeof KableClientProxy>[0] = {}) {
    const proxy = cluster.client({ target: 'math', ...options });
    await proxy.whenServed('who', { count: 3 });
    return proxy;
  }

  /** Which replica (instance id) answered each key's 'who', asked one after another. */
  async function placement(send: (key: string) => Promise<string>): Promise<Map<string, string>> {
    const placed = new Map<string, string>();
    for (const key of KEYS) placed.set(key, await send(key));
    return placed;
  }

  const keyed = (proxy: KableClientProxy) => (key: string) =>
    firstValueFrom(proxy.send<string>('who', new KableRecord({}, { affinityKey: key })));

  it('sends every request with one key to one replica, the same on every caller, and the handler gets the data only', async () => {
    await math();
    const first = await client();
    const second = await client({ id: 'other-caller' });
    const placed = await placement(keyed(first));
    for (let round = 0; round < 4; round++) expect(await placement(keyed(first))).toEqual(placed);
    // Another caller, with a node and connections of its own, puts every key on the same replica.
    expect(await placement(keyed(second))).toEqual(placed);
    // 31 keys over 3 replicas: each has some (all on one would not be balancing at all).
    expect(new Set(placed.values()).size).toBe(3);
    const echoed = await firstValueFrom(
      first.send('echo', new KableRecord({ order: 7 }, { affinityKey: 'customer-1' })),
    );
    expect(echoed).toEqual({ order: 7 });
  });

  it('takes the key from the affinity option by route; a per-call key comes first; unkeyed requests keep exact round robin', async () => {
    await math();
    const sumKey = jest.fn((numbers: number[]) => numbers.length);
    const proxy = await client({
      affinity: { who: (data: { customer?: string }) => data.customer, '{"cmd":"sum"}': sumKey },
    });
    const byRecord = await placement(keyed(proxy));
    const byOption = await placement((key) => firstValueFrom(proxy.send<string>('who', { customer: key })));
    expect(byOption).toEqual(byRecord);
    // A KableRecord's key wins over the option's: the request goes where its own key lives.
    const [a, b] = [KEYS.find((key) => byRecord.get(key) !== byRecord.get(KEYS[0]))!, KEYS[0]];
    for (let i = 0; i < 5; i++) {
      const iid = await firstValueFrom(
        proxy.send<string>('who', new KableRecord({ customer: a }, { affinityKey: b })),
      );
      expect(iid).toBe(byRecord.get(b));
    }
    // An object pattern is keyed by its route, Nest's JSON text of it.
    expect(await firstValueFrom(proxy.send({ cmd: 'sum' }, [1, 2, 3]))).toBe(6);
    expect(sumKey).toHaveBeenCalledWith([1, 2, 3]);
    // No key (the function gives undefined): round robin, exactly equal shares.
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const iid = await firstValueFrom(proxy.send<string>('who', {}));
      counts.set(iid, (counts.get(iid) ?? 0) + 1);
    }
    expect([...counts.values()]).toEqual([10, 10, 10]);
  });

  it('reads the key from packet metadata set by a Nest 12 dispatch hook, after a per-call key', async () => {
    await math();
    const proxy = await client();
    const byRecord = await placement(keyed(proxy));
    const hook = (
      proxy as unknown as {
        setOnDispatchHook?: (
          hook: (packet: { data: unknown; metadata?: Record<string, unknown> }) => void,
        ) => void;
      }
    ).setOnDispatchHook;
    expect(typeof hook).toBe(nest11 ? 'undefined' : 'function');
    if (hook === undefined) return;
    hook.call(proxy, (packet) => {
      packet.metadata = { [KABLE_AFFINITY_METADATA]: (packet.data as { customer: string }).customer };
    });
    const byMetadata = await placement((key) => firstValueFrom(proxy.send<string>('who', { customer: key })));
    expect(byMetadata).toEqual(byRecord);
    const other = KEYS.find((key) => byRecord.get(key) !== byRecord.get(KEYS[0]))!;
    const iid = await firstValueFrom(
      proxy.send<string>('who', new KableRecord({ customer: other }, { affinityKey: KEYS[0] })),
    );
    expect(iid).toBe(byRecord.get(KEYS[0]));
  });

  it("sends a keyed event to the key's replica of each service", async () => {
    const apps = await math();
    const stats = await Promise.all([1, 2].map(() => cluster.service(MathModule, 'stats')));
    // Untargeted, for events to every service; the targeted one asks math where the key's requests go.
    const proxy = cluster.client();
    await proxy.whenServed('who', { count: 5 });
    const home = await firstValueFrom(
      (await client()).send<string>('who', new KableRecord({}, { affinityKey: 'customer-3' })),
    );
    const ledgers = [...apps, ...stats].map((app) => app.get(MathLedger));
    for (let i = 0; i < 6; i++) {
      await lastValueFrom(proxy.emit('traced', new KableRecord({ i }, { affinityKey: 'customer-3' })), {
        defaultValue: undefined,
      });
    }
    await waitUntil(
      () => ledgers.reduce((sum, ledger) => sum + ledger.metadata.length, 0) === 12,
      ledgers,
      ['changed'],
      5000,
      '12 events',
    );
    const got = ledgers.map((ledger) => ledger.metadata.length);
    // All six on one replica of each service: the math one is where the key's requests go.
    expect(got.slice(0, 3).sort()).toEqual([0, 0, 6]);
    expect(got.slice(3).sort()).toEqual([0, 6]);
    expect(serverOf(apps[got.indexOf(6)]).node.iid).toBe(home);
    // Another key's replica of "stats" may differ: the choice is per service, over its own replicas.
  });

  it("passes a busy replica's keys on while it is busy, and gives them back after", async () => {
    const apps = await math();
    const proxy = await client();
    const placed = await placement(keyed(proxy));
    // A @KableDoing handler on customer-0's replica: that node is DOING_SOMETHING until released.
    const busy = placed.get(KEYS[0])!;
    const ledger = apps.map((app) => app.get(MathLedger))[
      apps.findIndex((app) => serverOf(app).node.iid === busy)
    ];
    const rebuild = firstValueFrom(proxy.send('rebuild', new KableRecord('index', { affinityKey: KEYS[0] })));
    const serving = () => proxy.nodesFor('who').length;
    await waitUntil(() => serving() === 2, [proxy.node], ['peer:state'], 5000, 'the replica to be busy');
    const whileBusy = await placement(keyed(proxy));
    for (const key of KEYS) {
      if (placed.get(key) === busy) expect(whileBusy.get(key)).not.toBe(busy);
      else expect(whileBusy.get(key)).toBe(placed.get(key));
    }
    // The busy replica's keys each went to one other replica, every time.
    expect(await placement(keyed(proxy))).toEqual(whileBusy);
    ledger.release('index');
    expect(await rebuild).toBe('rebuilt index');
    await waitUntil(() => serving() === 3, [proxy.node], ['peer:state'], 5000, 'the replica to be back');
    expect(await placement(keyed(proxy))).toEqual(placed);
  });

  /**
   * Three requests held at a key's replica and one at another, released together, the other first: the
   * key is sent from the other's reply callback while its replica's three replies wait, received, in
   * their socket. Returns the key's replica, that replica's load at the send, and where the key went.
   */
  async function sendAmidReplies(
    options: ConstructorParameters<typeof KableClientProxy>[0] = {},
  ): Promise<{ home: string; homeLoadAtSend: number; went: string }> {
    const apps = await math();
    const proxy = await client(options);
    const placed = await placement(keyed(proxy));
    const ledgerOf = (iid: string) =>
      apps[apps.findIndex((app) => serverOf(app).node.iid === iid)].get(MathLedger);
    const key = KEYS[0];
    const home = placed.get(key)!;
    const other = placed.get(KEYS.find((k) => placed.get(k) !== home)!)!;
    const homeKeys = KEYS.filter((k) => k !== key && placed.get(k) === home).slice(0, 3);
    const otherKey = KEYS.find((k) => placed.get(k) === other)!;
    const hold = (name: string, affinityKey: string) =>
      firstValueFrom(proxy.send<string>('hold', new KableRecord(name, { affinityKey })));
    // Three held at the key's replica, one at another: with the other's answered, 3 of 3 in flight are
    // at the key's replica, over its limit (the bound is ⌈1.25 × 4 / 3⌉ = 2).
    const held = homeKeys.map((k, i) => hold(`home-${i}`, k));
    const answered = hold('other', otherKey);
    await waitUntil(
      () => ledgerOf(home).gates.size === 3 && ledgerOf(other).gates.size === 1,
      apps.map((app) => app.get(MathLedger)),
      ['changed'],
      5000,
      'four held requests',
    );
    const pool = (proxy as unknown as { pool: PeerLanes }).pool;
    let sent: Promise<string> | undefined;
    let homeLoadAtSend = -1;
    const sendingOnReply = answered.then(() => {
      homeLoadAtSend = pool.inFlight(home);
      sent = keyed(proxy)(key);
    });
    ledgerOf(other).release('other');
    // Its reply is written by the end of this turn (the servers are in this process); the key's
    // replica answers just after, before this caller's next read: both are read in one turn.
    setImmediate(() => {
      for (let i = 0; i < 3; i++) ledgerOf(home).release(`home-${i}`);
    });
    await sendingOnReply;
    expect(await Promise.all(held)).toEqual([home, home, home]);
    return { home, homeLoadAtSend, went: await sent! };
  }

  it("sends a key home when its replica's replies, received in the same turn, are read after the send's moment", async () => {
    const { home, homeLoadAtSend, went } = await sendAmidReplies();
    // Over the key's limit at that moment (by the counts then, the key would pass on).
    expect(homeLoadAtSend).toBe(3);
    expect(went).toBe(home);
  });

  it('with affinityRecheck: false passes the key on at once by the counts of the moment', async () => {
    const { home, homeLoadAtSend, went } = await sendAmidReplies({ affinityRecheck: false });
    expect(homeLoadAtSend).toBe(3);
    expect(went).not.toBe(home);
    expect(() => new KableClientProxy({ affinityRecheck: 'no' as never })).toThrow(
      'KableClientProxy option "affinityRecheck" must be true (the default) or false; got "no".',
    );
  });

  it("counts each key's requests in flight while they are, and forgets every key once they end: replies, errors, timeouts, cancels", async () => {
    const apps = await math();
    const proxy = await client({ timeout: 1500 });
    const keys = (proxy as unknown as { keysInFlight: KeysInFlight }).keysInFlight;
    const ledgers = apps.map((app) => app.get(MathLedger));
    const ended: Promise<unknown>[] = [];
    let live = 0;
    let most = 0;
    let overLive = 0;
    const track = (observable: Observable<unknown>, cancelAfterFirst = false) => {
      live++;
      ended.push(
        new Promise<void>((resolve) => {
          const subscription: Subscription = observable.subscribe({
            next: () => {
              if (!cancelAfterFirst) return;
              // Cancelled while the server still streams: the key's count must go with it.
              queueMicrotask(() => {
                subscription.unsubscribe();
                live--;
                resolve();
              });
            },
            error: () => {
              live--;
              resolve();
            },
            complete: () => {
              live--;
              resolve();
            },
          });
        }),
      );
      most = Math.max(most, keys.size);
      if (keys.size > live) overLive++;
    };
    const record = (data: unknown, i: number) => new KableRecord(data, { affinityKey: `customer-${i % 7}` });
    // Five of one key held on its replica: counted as five, one map entry.
    for (let i = 0; i < 5; i++) track(proxy.send('hold', record(`gate-${i}`, 0)));
    await waitUntil(
      () => ledgers.reduce((sum, ledger) => sum + ledger.gates.size, 0) === 5,
      ledgers,
      ['changed'],
      5000,
      'five held requests',
    );
    expect(keys.of(keyHash('customer-0'))).toBe(5);
    expect(keys.size).toBe(1);
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 60; i++) track(proxy.send('who', record({}, i)));
      for (let i = 0; i < 10; i++) track(proxy.send('rpc-error', record({}, i)));
      for (let i = 0; i < 5; i++) track(proxy.send('endless', record({}, i)), true);
      for (let i = 0; i < 3; i++) track(proxy.send('silent', record({}, i)));
      // Cancelled before any reply.
      for (let i = 0; i < 3; i++) proxy.send('silent', record({}, i)).subscribe().unsubscribe();
    }
    for (const ledger of ledgers) for (const name of [...ledger.gates.keys()]) ledger.release(name);
    await Promise.all(ended);
    // Seven keys were in flight at once, and never more entries than requests in flight.
    expect({ most, overLive, live }).toEqual({ most: 7, overLive: 0, live: 0 });
    expect(keys.size).toBe(0);
  });

  it('refuses an affinity option that is not functions, and fails a request whose key is not a string or number', async () => {
    expect(() => new KableClientProxy({ affinity: { who: 'customer' } as never })).toThrow(KableOptionsError);
    expect(() => new KableClientProxy({ affinity: { who: 'customer' } as never })).toThrow(
      /"affinity" must map each pattern to a function .*"who" is string/,
    );
    expect(() => new KableClientProxy({ affinity: [] as never })).toThrow(/object of functions by pattern/);
    await math();
    const proxy = await client({
      affinity: {
        who: (data: { bad?: string }) => (data.bad === 'throw' ? thrower() : (data as never)),
      },
    });
    await expect(firstValueFrom(proxy.send('who', { bad: 'object' }))).rejects.toMatchObject({
      code: 'KABLE_AFFINITY_KEY',
      message: expect.stringMatching(/the "affinity" function of "who" must be a string or a finite number/),
    });
    await expect(firstValueFrom(proxy.send('who', { bad: 'throw' }))).rejects.toThrow('no key here');
    await expect(
      firstValueFrom(proxy.send('who', new KableRecord({}, { affinityKey: Number.NaN }))),
    ).rejects.toMatchObject({ code: 'KABLE_AFFINITY_KEY' });
  });
});

function thrower(): never {
  throw new Error('no key here');
}
