import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { advertToArray, encodeValue } from '../../lib/discovery/advert-codec.js';
import { AdvertSeal } from '../../lib/discovery/advert-seal.js';
import { JOIN_RELAY_BURST_PER_ADDRESS } from '../../lib/discovery/join-relay.js';
import { kable } from '../../lib/kable.js';
import { EVERYONE, JOIN_ANSWER_BURST_PER_ADDRESS } from '../../lib/node/join-answers.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import { testAdvert } from '../support/adverts.js';
import { eventually } from '../support/events.js';

// Unicast without a key, on real sockets (loopback only): join requests forged with the source address
// of another host (127.0.0.2 here), a new port each time, sent to a seed. What the cluster sends back to
// that host, and how much it relays among itself, is counted. Default timings (advertiseInterval 3 s):
// a node answers one address at most four times a second (docs/security.md), after a burst of four.
const NODES = 4;
const FORGED = 40;
const VICTIM = '127.0.0.2';
const nodes: KableNode[] = [];
const sockets: dgram.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await Promise.all(nodes.splice(0).map((node) => node.down()));
});

function unicastNode(id: string, port: number, seeds: number[]): KableNode {
  const node = kable(id, {
    host: '127.0.0.1',
    discovery: {
      mode: 'unicast',
      interface: '127.0.0.1',
      port,
      peers: seeds.map((seed) => `127.0.0.1:${seed}`),
    },
  });
  nodes.push(node);
  return node;
}

describe('forged join requests, unicast without a key', () => {
  it('are answered at most four times a second per address however the port changes, and never put on a send list', async () => {
    const base = randomInt(20_000, 50_000);
    const ports = Array.from({ length: NODES }, (_, i) => base + i);
    const cluster = ports.map((port, i) => unicastNode(`n${i}`, port, ports));
    await Promise.all(cluster.map((node) => node.up()));
    // Each lists the others as seeds; once each has heard every other (and introduced itself back), the
    // joins of the start are over.
    await eventually(
      () => cluster.every((node) => node.stats().introductionsSent === NODES - 1),
      'each node to have heard the others',
      10_000,
    );
    const seed = cluster[0];
    const relaysBefore = seed.stats().relaysSent;
    const seal = new AdvertSeal('default', []);
    let received = 0;
    const startedAt = performance.now();
    // One datagram each, from a new port each time (the forged source), 25 ms apart.
    for (let i = 0; i < FORGED; i++) {
      const socket = dgram.createSocket('udp4');
      sockets.push(socket);
      socket.on('message', () => received++);
      await new Promise<void>((resolve) => socket.bind(0, VICTIM, resolve));
      const join = testAdvert({
        event: 'advertisement',
        id: 'forged',
        iid: `forged-${i}`,
        probe: [EVERYONE],
      });
      const datagram = seal.seal(
        encodeValue([randomBytes(8).toString('hex'), 1, Date.now(), advertToArray(join)]),
      );
      await new Promise<void>((resolve) => socket.send(datagram, ports[0], '127.0.0.1', () => resolve()));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const attack = (performance.now() - startedAt) / 1000;
    // Time is the subject: answers booked within the per-address budget go out over the next second;
    // a send list holding the forged addresses would send them adverts (every 3 s) and gossip too.
    await new Promise((resolve) => setTimeout(resolve, 3500));
    const seconds = (performance.now() - startedAt) / 1000;
    // A burst, then four a second while requests come and for the second after (answers booked then).
    const perNode = JOIN_ANSWER_BURST_PER_ADDRESS + 4 * (attack + 1);
    expect(received).toBeGreaterThan(0); // answered, within the budget
    expect(received).toBeLessThanOrEqual(NODES * perNode);
    const relays = seed.stats().relaysSent - relaysBefore;
    expect(relays).toBeLessThanOrEqual((NODES - 1) * (JOIN_RELAY_BURST_PER_ADDRESS + 4 * attack));
    // Nobody sends to the forged addresses: each node's send list is still the other nodes.
    for (const node of cluster) expect(node.stats().unicastTargets).toBe(NODES - 1);
    process.stderr.write(
      `forged joins: ${FORGED} in ${seconds.toFixed(1)} s -> ${received} datagrams to ${VICTIM}, ${relays} relays\n`,
    );
  }, 30_000);
});
