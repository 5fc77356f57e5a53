import { afterEach, describe, expect, it } from '@jest/globals';
import type { Observer } from 'rxjs';
import { KableDataPlaneError } from '../../lib/data-plane/data-plane-errors.js';
import type { ReplyObserver } from '../../lib/data-plane/peer-connection.js';
import type { PeerLanes } from '../../lib/data-plane/peer-lanes.js';
import { KeysInFlight } from '../../lib/node/keys-in-flight.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { OutboundRequest } from '../../lib/nest/outbound-request.js';
import type { PatternRouter } from '../../lib/nest/pattern-router.js';
import { RequestDeadlines } from '../../lib/nest/request-deadlines.js';

// Where a request goes when the queue toward the replica whose turn it is is full: a router, a pool and
// connections reduced to what a request reads (the real ones are exercised in queue-full.test.ts).

interface FakeConnection {
  hasRoom: boolean;
  waitingForRoom: number;
  requests: number;
}

function replicas(shape: Record<string, { hasRoom: boolean; waitingForRoom: number }>) {
  const peers = Object.keys(shape).map((iid) => ({ iid, id: 'math' }) as PeerRecord);
  const connections = new Map<string, FakeConnection>(
    Object.entries(shape).map(([iid, state]) => [iid, { ...state, requests: 0 }]),
  );
  let turn = 0;
  const router = {
    candidates: () => peers,
    next: () => peers[turn++ % peers.length],
    targetWithoutHandler: () => undefined,
    avoid: () => undefined,
  } as unknown as PatternRouter;
  const pool = {
    get: (peer: PeerRecord) => {
      const connection = connections.get(peer.iid)!;
      return {
        get hasRoom() {
          return connection.hasRoom;
        },
        request: () => {
          connection.requests++;
          return () => undefined;
        },
      };
    },
    hasRoom: (iid: string) => connections.get(iid)!.hasRoom,
    waitingForRoom: (iid: string) => connections.get(iid)!.waitingForRoom,
    isBulk: () => false,
  } as unknown as PeerLanes;
  return { router, pool, connections };
}

const deadlines = new RequestDeadlines(() => undefined);
const requests: OutboundRequest[] = [];
afterEach(() => {
  for (const request of requests.splice(0)) request.unsubscribe();
});

/** Sends one request and says which replica's connection got it. */
function sendOne(shape: Parameters<typeof replicas>[0]): string[] {
  const { router, pool, connections } = replicas(shape);
  const subscriber: Observer<unknown> = {
    next: () => undefined,
    error: () => undefined,
    complete: () => undefined,
  };
  const settings = { pickTimeout: 1000, avoidFor: 1000, timeout: 1000, retries: 2 };
  const request = new OutboundRequest(deadlines, router, pool, settings, 'add', 1, undefined, subscriber);
  requests.push(request);
  request.start();
  return [...connections].filter(([, connection]) => connection.requests > 0).map(([iid]) => iid);
}

describe('a request whose replica has a full queue', () => {
  it('goes to the next replica with room', () => {
    expect(
      sendOne({
        a: { hasRoom: false, waitingForRoom: 3 },
        b: { hasRoom: false, waitingForRoom: 1 },
        c: { hasRoom: true, waitingForRoom: 0 },
      }),
    ).toEqual(['c']);
  });

  it('with no room anywhere, waits where fewest wait: not behind a replica that stopped reading', () => {
    expect(
      sendOne({
        a: { hasRoom: false, waitingForRoom: 40 },
        b: { hasRoom: false, waitingForRoom: 2 },
        c: { hasRoom: false, waitingForRoom: 7 },
      }),
    ).toEqual(['b']);
  });

  it('stays where it was sent when no line is shorter', () => {
    expect(
      sendOne({
        a: { hasRoom: false, waitingForRoom: 1 },
        b: { hasRoom: false, waitingForRoom: 1 },
        c: { hasRoom: false, waitingForRoom: 4 },
      }),
    ).toEqual(['a']);
  });

  it('with room, takes its turn: no other replica is looked at', () => {
    expect(
      sendOne({
        a: { hasRoom: true, waitingForRoom: 0 },
        b: { hasRoom: true, waitingForRoom: 0 },
      }),
    ).toEqual(['a']);
  });
});

describe("a keyed request's count in KeysInFlight", () => {
  it('moves with a retry to another replica: counted once while in flight, gone when it ends', () => {
    const peers = ['a', 'b'].map((iid) => ({ iid, id: 'math' }) as PeerRecord);
    const keys = new KeysInFlight();
    const seen: number[] = [];
    let turn = 0;
    const router = {
      candidates: () => peers,
      next: (_pattern: string, _key?: number, keyInFlight?: number) => {
        seen.push(keyInFlight!);
        return peers[turn++ % peers.length];
      },
      targetWithoutHandler: () => undefined,
      avoid: () => undefined,
    } as unknown as PatternRouter;
    let answer: ReplyObserver | undefined;
    const pool = {
      get: (peer: PeerRecord) => ({
        hasRoom: true,
        request: (_p: string, _d: unknown, _m: unknown, observer: ReplyObserver) => {
          // The first replica refuses at once (nothing reached a handler): the request goes to the next.
          if (peer.iid === 'a') {
            observer.error(new KableDataPlaneError('KABLE_REFUSED', 'refused', true));
          } else answer = observer;
          return () => undefined;
        },
      }),
      isBulk: () => false,
    } as unknown as PeerLanes;
    const outcome: string[] = [];
    const subscriber: Observer<unknown> = {
      next: () => undefined,
      error: () => outcome.push('error'),
      complete: () => outcome.push('complete'),
    };
    const settings = { pickTimeout: 1000, avoidFor: 1000, timeout: 1000, retries: 2 };
    const key = 12345;
    const request = new OutboundRequest(
      deadlines,
      router,
      pool,
      settings,
      'add',
      1,
      undefined,
      subscriber,
      undefined,
      key,
      keys,
    );
    requests.push(request);
    request.start();
    // The retry picked with the refused attempt no longer counted, and only the one on "b" is.
    expect({ seen, inFlight: keys.of(key), size: keys.size }).toEqual({ seen: [0, 0], inFlight: 1, size: 1 });
    answer!.complete();
    expect({ outcome, inFlight: keys.of(key), size: keys.size }).toEqual({
      outcome: ['complete'],
      inFlight: 0,
      size: 0,
    });
  });
});
