import { randomBytes } from 'node:crypto';
import { advertToArray, encodeValue } from '../lib/discovery/advert-codec.js';
import { AdvertSeal, parseKeys } from '../lib/discovery/advert-seal.js';
import { MemoryBus } from '../lib/discovery/memory.transport.js';
import { kable } from '../lib/kable.js';
import type { Advert } from '../lib/node/advert.js';
import { KableNode } from '../lib/node/kable-node.js';
import type { PeerRecord } from '../lib/node/peer-record.js';
import { loopbackMulticast, quantile } from './support.js';

/** pick() calls per second over three RUNNING replicas. */
export async function pickRate(iterations: number): Promise<number> {
  const bus = new MemoryBus();
  const nodes = [0, 1, 2, 3].map(
    (i) => new KableNode(i === 0 ? 'client' : 'math', { replica: true, host: '127.0.0.1' }, bus.transport()),
  );
  await Promise.all(nodes.map((node) => node.up()));
  await new Promise<void>((resolve) => {
    const check = () => (nodes[0].running('math').length === 3 ? resolve() : setTimeout(check, 5));
    check();
  });
  const started = performance.now();
  let sink = 0;
  for (let i = 0; i < iterations; i++) sink += nodes[0].pickNow('math')!.port;
  const rate = iterations / ((performance.now() - started) / 1000);
  await Promise.all(nodes.map((node) => node.down()));
  return sink >= 0 ? rate : 0;
}

/** Advert seal + open pairs per second (AES-256-GCM, one datagram each). */
export function sealRate(iterations: number): number {
  const seal = new AdvertSeal('default', parseKeys(randomBytes(32).toString('base64'), undefined));
  const advert: Advert = {
    event: 'advertisement',
    id: 'math',
    iid: crypto.randomUUID(),
    replica: true,
    host: '127.0.0.5',
    port: 40000,
    hostname: 'bench',
    pid: 1,
    index: 12345,
    startedAt: Date.now(),
    state: 'RUNNING',
    since: Date.now(),
    seq: 1,
    patterns: 'abcdefghijklmnop',
  };
  const payload = encodeValue(['boot', 1, Date.now(), advertToArray(advert)]);
  const started = performance.now();
  for (let i = 0; i < iterations; i++) seal.open(seal.seal(payload));
  return iterations / ((performance.now() - started) / 1000);
}

/** Milliseconds from starting `count` nodes (UDP multicast on loopback) until every node knows every other. */
export async function convergence(count: number, advertiseInterval: number): Promise<number> {
  const discovery = loopbackMulticast(advertiseInterval);
  const nodes = Array.from({ length: count }, (_, i) => kable(`n${i}`, { host: '127.0.0.1', discovery }));
  const started = performance.now();
  const complete = new Promise<void>((resolve) => {
    let known = 0;
    const target = count * (count - 1);
    for (const node of nodes) {
      node.on('peer:added', () => {
        known++;
        if (known === target) resolve();
      });
    }
  });
  await Promise.all(nodes.map((node) => node.up()));
  await complete;
  const elapsed = performance.now() - started;
  await Promise.all(nodes.map((node) => node.down()));
  return elapsed;
}

/** Milliseconds until all other `count - 1` nodes see one node's state change; `rounds` samples each. */
export async function propagation(count: number, rounds: number): Promise<{ p50: number; p99: number }> {
  const discovery = loopbackMulticast(1000);
  const nodes = Array.from({ length: count }, (_, i) => kable(`n${i}`, { host: '127.0.0.1', discovery }));
  await Promise.all(nodes.map((node) => node.up()));
  await new Promise<void>((resolve) => {
    const check = () =>
      nodes.every((n) => n.peers().length === count - 1) ? resolve() : setTimeout(check, 10);
    check();
  });
  const samples: number[] = [];
  const source = nodes[0];
  for (let round = 0; round < rounds; round++) {
    const to = round % 2 === 0 ? 'DOING_SOMETHING' : 'RUNNING';
    const seen = nodes.slice(1).map(
      (node) =>
        new Promise<void>((resolve) => {
          const listener = (peer: PeerRecord) => {
            if (peer.iid !== source.iid || peer.state !== to) return;
            node.off('peer:state', listener);
            resolve();
          };
          node.on('peer:state', listener);
        }),
    );
    const started = performance.now();
    if (to === 'DOING_SOMETHING') source.doing('bench');
    else source.start();
    await Promise.all(seen);
    samples.push(performance.now() - started);
    // Stay under maxUpdatesPerSecond so no change is coalesced.
    await new Promise((resolve) => setTimeout(resolve, 60));
  }
  await Promise.all(nodes.map((node) => node.down()));
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99) };
}
