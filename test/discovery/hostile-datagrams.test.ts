import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import { advertToArray, encodeValue } from '../../lib/discovery/advert-codec.js';
import { AdvertSeal, parseKeys } from '../../lib/discovery/advert-seal.js';
import { kable } from '../../lib/kable.js';
import type { Advert } from '../../lib/node/advert.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { waitForEvent } from '../support/events.js';
import { testAdvert } from '../support/adverts.js';

// Thousands of random and mutated datagrams against a live node on a real UDP socket: nothing crashes,
// nothing about the cluster changes, and every datagram is counted as dropped by kind.
const key = randomBytes(32).toString('base64');
const seal = new AdvertSeal('default', parseKeys(key, undefined));
const port = randomInt(20_000, 60_000);
let node: KableNode;
let sender: dgram.Socket;

function advert(iid: string, state: Advert['state'], seq: number): Advert {
  return testAdvert({ iid, state, seq });
}

function sealed(value: Advert, boot = randomBytes(8).toString('hex'), seq = 1): Buffer {
  return seal.seal(encodeValue([boot, seq, Date.now(), advertToArray(value)]));
}

function send(datagram: Uint8Array): Promise<void> {
  return new Promise((resolve) => sender.send(datagram, port, '127.0.0.1', () => resolve()));
}

function droppedTotal(): number {
  let total = 0;
  for (const [name, count] of Object.entries(node.stats())) if (name.startsWith('dropped.')) total += count;
  return total;
}

beforeAll(async () => {
  node = kable('target', {
    key,
    host: '127.0.0.1',
    discovery: {
      mode: 'unicast',
      interface: '127.0.0.1',
      port,
      peers: [`127.0.0.1:${port + 1}`],
      advertiseInterval: 60_000,
    },
  });
  await node.up();
  sender = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  sender.close();
  await node.down();
});

describe('a live node under hostile datagrams', () => {
  it('drops and counts every random or mutated datagram, and its view of the cluster never changes', async () => {
    const markerIid = randomUUID();
    const markerBoot = randomBytes(8).toString('hex');
    const intruder = sealed(advert(randomUUID(), 'RUNNING', 1));
    const mutated = fc
      .tuple(fc.nat(intruder.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(40), fc.boolean())
      .map(([at, flip, cut, extend]) => {
        const copy = Buffer.from(intruder);
        copy[at] ^= flip;
        if (extend) return Buffer.concat([copy, randomBytes(cut + 1)]);
        return copy.subarray(0, copy.length - cut);
      });
    const hostile = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 1500 }),
      mutated,
      fc
        .uint8Array({ minLength: 1, maxLength: 200 })
        .map((tail) => Buffer.concat([Buffer.from([0x4b, 1]), tail])),
    );
    let sent = 0;
    let batch = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(hostile, { minLength: 40, maxLength: 40 }), async (datagrams) => {
        const before = droppedTotal();
        for (const datagram of datagrams) await send(datagram);
        // A legitimate marker sent after the batch: once it is seen, the batch has been processed
        // (loopback keeps one socket's datagrams in order).
        batch++;
        const seen = waitForEvent(
          node,
          batch === 1 ? 'peer:added' : 'peer:state',
          (p: PeerRecord) => p.iid === markerIid,
        );
        await send(
          sealed(advert(markerIid, batch % 2 === 0 ? 'STOPPED' : 'RUNNING', batch), markerBoot, batch),
        );
        await seen;
        sent += datagrams.length;
        expect(droppedTotal() - before).toBe(datagrams.length);
      }),
      { numRuns: 60 },
    );
    expect(sent).toBe(2400);
    expect(node.state.state).toBe('RUNNING');
    expect(node.peers().map((p) => p.iid)).toEqual([markerIid]);
  });
});
