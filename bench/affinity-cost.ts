// The client's request path with and without an affinity key, in one process and without sockets: a
// fake node, catalog and pool around the real PatternRouter, OutboundRequest, Rendezvous, KeysInFlight
// and keyHash, 64 requests in flight over 4 replicas, a random one answering before each send. It prints
// CPU nanoseconds per request, medians of interleaved rounds: what the library itself adds for a key,
// which the throughput rows of bench/affinity.ts cannot resolve on a busy 2-core host.
// node --import ./scripts/register-ts.js bench/affinity-cost.ts [requests per round] [rounds]
import type { ReplyObserver } from '../lib/data-plane/peer-connection.js';
import type { PeerLanes } from '../lib/data-plane/peer-lanes.js';
import type { KableNode } from '../lib/node/kable-node.js';
import { KeysInFlight } from '../lib/node/keys-in-flight.js';
import type { PeerRecord } from '../lib/node/peer-record.js';
import { keyHash } from '../lib/node/rendezvous.js';
import { OutboundRequest } from '../lib/nest/outbound-request.js';
import type { PatternCatalog } from '../lib/nest/pattern-catalog.js';
import { PatternRouter } from '../lib/nest/pattern-router.js';
import { RequestDeadlines } from '../lib/nest/request-deadlines.js';
import { seededRandom } from '../test/support/zipf.js';
import { median } from './support.js';

const LANES = 64;
const requests = Number(process.argv[2] ?? 400_000);
const rounds = Number(process.argv[3] ?? 10);

const peers = Array.from(
  { length: 4 },
  (_, i) =>
    ({
      iid: `replica-${i}-0123456789abcdef`,
      id: 'math',
      host: '127.0.0.1',
      port: 41000 + i,
      compatible: true,
      patterns: 'who',
    }) as unknown as PeerRecord,
);
const node = { version: 1, running: () => peers, runningNodes: () => peers, on() {}, off() {} };
const catalog = { version: 1, handles: () => true, isKnown: () => true, on() {}, off() {} };
const inFlight = new Map<string, number>(peers.map((peer) => [peer.iid, 0]));
const pending: Array<[string, ReplyObserver]> = [];
const connections = new Map(
  peers.map((peer) => [
    peer.iid,
    {
      hasRoom: true,
      isUnsent: () => false,
      request(_pattern: string, _data: unknown, _metadata: unknown, observer: ReplyObserver) {
        inFlight.set(peer.iid, inFlight.get(peer.iid)! + 1);
        pending.push([peer.iid, observer]);
        return () => undefined;
      },
    },
  ]),
);
const pool = {
  get: (peer: PeerRecord) => connections.get(peer.iid),
  inFlight: (iid: string) => inFlight.get(iid) ?? 0,
  isBulk: () => false,
  hasRoom: () => true,
  waitingForRoom: () => 0,
} as unknown as PeerLanes;
// As the client: the balancer reads this caller's requests in flight per replica.
const router = new PatternRouter(
  node as unknown as KableNode,
  catalog as unknown as PatternCatalog,
  'math',
  100,
  (peer) => pool.inFlight(peer.iid),
);
const deadlines = new RequestDeadlines(() => undefined);
const settings = { pickTimeout: 1000, avoidFor: 1000, timeout: 60_000, retries: 2 };
const keys = new KeysInFlight();
const names = Array.from({ length: 10_000 }, (_, rank) => `customer-${rank}`);
const random = seededRandom(5);
const subscriber = {
  next: () => undefined,
  error: (error: unknown) => {
    throw error;
  },
  complete: () => undefined,
};

function send(keyed: boolean): void {
  const key = keyed ? keyHash(names[Math.floor(random() * names.length)]) : undefined;
  new OutboundRequest(
    deadlines,
    router,
    pool,
    settings,
    'who',
    {},
    undefined,
    subscriber,
    undefined,
    key,
    keys,
  ).start();
}

function answerOne(): void {
  const at = Math.floor(random() * pending.length);
  const [iid, observer] = pending[at];
  pending[at] = pending[pending.length - 1];
  pending.pop();
  inFlight.set(iid, inFlight.get(iid)! - 1);
  observer.next('who');
  observer.complete();
}

/** CPU nanoseconds per request of one round. */
function round(keyed: boolean): number {
  for (let i = 0; i < LANES; i++) send(keyed);
  const started = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    answerOne();
    send(keyed);
  }
  const used = process.cpuUsage(started);
  while (pending.length > 0) answerOne();
  return ((used.user + used.system) * 1000) / requests;
}

const keyed: number[] = [];
const plain: number[] = [];
// Two rounds of each warm up; then alternate which goes first.
for (let r = 0; r < rounds + 2; r++) {
  const first = r % 2 === 0;
  const a = round(first);
  const b = round(!first);
  if (r < 2) continue;
  (first ? keyed : plain).push(a);
  (first ? plain : keyed).push(b);
}
const extra = keyed.map((k, i) => k - plain[i]);
process.stdout.write(
  `client request path, CPU ns per request (median of ${rounds}): with a key ${median(keyed).toFixed(0)}, ` +
    `round robin ${median(plain).toFixed(0)}, the key adds ${median(extra).toFixed(0)}\n`,
);
process.exit(0);
