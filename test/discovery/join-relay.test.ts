import { afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { advertToArray, encodeValue } from '../../lib/discovery/advert-codec.js';
import { AdvertSeal, parseKeys } from '../../lib/discovery/advert-seal.js';
import { kable } from '../../lib/kable.js';
import type { Advert } from '../../lib/node/advert.js';
import { EVERYONE } from '../../lib/node/join-answers.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import { testAdvert } from '../support/adverts.js';
import { eventually, waitUntil } from '../support/events.js';

// Unicast joins on real sockets, with periodic adverts and gossip an hour apart: whatever the newcomer
// learns, it learns from the join request, its relay and the answers.
const key = randomBytes(32).toString('base64');
const timing = { advertiseInterval: 3_600_000 };
const nodes: KableNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((node) => node.down()));
});

function unicastNode(id: string, port: number, seeds: number[]): KableNode {
  const node = kable(id, {
    key,
    host: '127.0.0.1',
    discovery: {
      mode: 'unicast',
      interface: '127.0.0.1',
      port,
      peers: seeds.map((seed) => `127.0.0.1:${seed}`),
      ...timing,
    },
  });
  nodes.push(node);
  return node;
}

function joinAdvert(iid: string): Advert {
  return testAdvert({ event: 'advertisement', id: 'joiner', iid, probe: [EVERYONE] });
}

describe('joining over unicast', () => {
  it('a newcomer that knows one seed hears every node at once: the seed relays, the others answer it directly', async () => {
    const base = randomInt(20_000, 50_000);
    const seed = unicastNode('seed', base, [base]);
    await seed.up();
    const others = [1, 2, 3].map((i) => unicastNode(`n${i}`, base + i, [base]));
    for (const node of others) await node.up();
    await waitUntil(
      () => others.every((node) => others.every((o) => o === node || node.peer(o.iid) !== undefined)),
      others,
      ['peer:added'],
      2000,
      'the first four to know each other, by their own joins',
    );
    // A join's own source is not trusted: each is on the others' send lists once it answered back. Nodes
    // started together also meet through the seed's late relays; counted from when that is over.
    await eventually(
      () => [seed, ...others].every((node) => node.stats().unicastTargets === 3),
      'each of the four to send to the other three',
    );
    const answersBefore = others.map((node) => node.stats().answersSent);
    const newcomer = unicastNode('newcomer', base + 9, [base]);
    await newcomer.up();
    const everyone = [seed, ...others];
    await waitUntil(
      () => everyone.every((node) => newcomer.peer(node.iid) !== undefined),
      [newcomer],
      ['peer:added'],
      2000,
      'the newcomer to know every node',
    );
    // One answer per node, straight to the newcomer; the seed relayed once to the three it knows.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(others.map((node, i) => node.stats().answersSent - answersBefore[i])).toEqual([1, 1, 1]);
    expect(seed.stats().relaysSent).toBeGreaterThanOrEqual(3);
    // Its answers to their answers put it on their send lists: its adverts now reach them all.
    expect(newcomer.stats().unicastTargets).toBe(4);
    for (const node of others) expect(node.peer(newcomer.iid)).toBeDefined();
    await eventually(
      () => everyone.every((node) => node.stats().unicastTargets === 4),
      'every node to send to the newcomer',
    );
  });

  it('drops malformed relays, and answers a relayed address at most once per pace however often it is named', async () => {
    const base = randomInt(20_000, 50_000);
    const node = unicastNode('target', base, [base + 1]);
    await node.up();
    const seal = new AdvertSeal('default', parseKeys(key, undefined));
    const victim = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => victim.bind(0, '127.0.0.1', resolve));
    let received = 0;
    victim.on('message', () => received++);
    const sender = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve));
    const boot = randomBytes(8).toString('hex');
    let seq = 0;
    const send = (body: unknown, joiner: unknown) =>
      new Promise<void>((resolve) =>
        sender.send(
          seal.seal(encodeValue([boot, ++seq, Date.now(), body, null, joiner])),
          base,
          '127.0.0.1',
          () => resolve(),
        ),
      );
    try {
      const victimAddress = `127.0.0.1:${(victim.address() as { port: number }).port}`;
      const plain = advertToArray({ ...joinAdvert('x'), probe: undefined });
      await send(plain.slice(0, 16), victimAddress); // no join request in it
      await send(advertToArray(joinAdvert('y')), 'not an address');
      await send(advertToArray(joinAdvert('z')), '127.0.0.1:0');
      for (let i = 0; i < 10; i++) await send(advertToArray(joinAdvert(`v${i}`)), victimAddress);
      await waitUntil(() => received >= 1, [victim], ['message'], 2000, 'the answer to the relayed address');
      // Let any further answer arrive before counting.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(node.stats()['dropped.badShape']).toBe(3);
      expect(node.stats().relaysReceived).toBe(10);
      // The pace is half a sweep: with this interval, far longer than the test.
      expect(received).toBe(1);
      expect(node.stats().joinAnswers).toBe(1);
    } finally {
      victim.close();
      sender.close();
    }
  });
});
