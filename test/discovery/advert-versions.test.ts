import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import dgram from 'node:dgram';
import {
  ADVERT_FIELDS,
  advertFromArray,
  advertToArray,
  decodeValue,
  encodeValue,
} from '../../lib/discovery/advert-codec.js';
import { AdvertSeal, parseKeys } from '../../lib/discovery/advert-seal.js';
import { kable } from '../../lib/kable.js';
import type { Advert } from '../../lib/node/advert.js';
import type { KableWarning } from '../../lib/node/errors.js';
import type { KableNode } from '../../lib/node/kable-node.js';
import type { PeerRecord } from '../../lib/node/peer-record.js';
import { PROTOCOL_VERSION } from '../../lib/node/protocol-version.js';
import { waitForEvent } from '../support/events.js';
import { testAdvert } from '../support/adverts.js';

// Adverts carry the protocol version. Fields a later minor version appends are ignored and counted, the
// node that sent them kept; a node of another major version is listed as incompatible, with a warning.

const ours = { major: PROTOCOL_VERSION.major, minor: PROTOCOL_VERSION.minor };
const newerMinor = { major: ours.major, minor: ours.minor + 1 };

/** Values a later minor version might append: anything MessagePack carries, small enough for a datagram. */
const extraField = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 20 }),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 20 }),
  fc.array(fc.integer(), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

describe('advert codec and versions', () => {
  const advert = testAdvert({ iid: randomUUID(), protocol: ours });

  it('writes the version as the eighteenth field, and reads it back', () => {
    const fields = advertToArray(advert);
    expect(fields).toHaveLength(ADVERT_FIELDS);
    expect(fields[17]).toEqual([ours.major, ours.minor]);
    expect(advertFromArray(decodeValue(encodeValue(fields)))).toEqual(advert);
  });

  it('ignores and counts any fields appended after the known ones', () => {
    fc.assert(
      fc.property(fc.array(extraField, { minLength: 1, maxLength: 20 }), (extra) => {
        const fields = [...advertToArray({ ...advert, protocol: newerMinor }), ...extra];
        expect(advertFromArray(decodeValue(encodeValue(fields)))).toEqual({
          ...advert,
          protocol: newerMinor,
          unknownFields: extra.length,
        });
      }),
      { numRuns: 300 },
    );
  });

  it('takes an advert without a version (sixteen or seventeen fields) as the current major', () => {
    const { protocol: _protocol, ...unversioned } = advert;
    expect(advertFromArray(advertToArray(advert).slice(0, 16))).toEqual(unversioned);
    expect(advertFromArray([...advertToArray(advert).slice(0, 16), [3]])).toEqual({
      ...unversioned,
      probe: [3],
    });
  });

  it('refuses an advert whose version field is malformed', () => {
    const fields = advertToArray(advert);
    for (const bad of [null, [1], [1, 2, 3], ['1', 0], [1, -1], [0x10000, 0], '1.0', { major: 1 }])
      expect(advertFromArray([...fields.slice(0, 17), bad])).toBeUndefined();
  });
});

describe('a live node receiving adverts of other versions', () => {
  const key = randomBytes(32).toString('base64');
  const seal = new AdvertSeal('default', parseKeys(key, undefined));
  const port = randomInt(20_000, 60_000);
  const warnings: KableWarning[] = [];
  let node: KableNode;
  let sender: dgram.Socket;

  function send(fields: unknown[], boot: string, seq: number): Promise<void> {
    const datagram = seal.seal(encodeValue([boot, seq, Date.now(), fields]));
    return new Promise((resolve) => sender.send(datagram, port, '127.0.0.1', () => resolve()));
  }

  function dropped(): number {
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
    node.on('warning', (warning) => warnings.push(warning));
    await node.up();
    sender = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    sender.close();
    await node.down();
  });

  it('keeps a node whose adverts carry fields it does not know, counting them', async () => {
    const iid = randomUUID();
    const boot = randomBytes(8).toString('hex');
    let seq = 0;
    let appended = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(extraField, { minLength: 1, maxLength: 10 }), async (extra) => {
        seq++;
        const state: Advert['state'] = seq % 2 === 0 ? 'STOPPED' : 'RUNNING';
        const seen = waitForEvent(
          node,
          seq === 1 ? 'peer:added' : 'peer:state',
          (p: PeerRecord) => p.iid === iid,
        );
        const advert = testAdvert({ iid, state, seq, protocol: newerMinor });
        await send([...advertToArray(advert), ...extra], boot, seq);
        const [peer] = (await seen) as [PeerRecord];
        appended += extra.length;
        expect(peer.state).toBe(state);
        expect(peer.compatible).toBe(true);
        expect(peer.protocol).toEqual(newerMinor);
      }),
      { numRuns: 100 },
    );
    expect(node.stats().unknownAdvertFields).toBe(appended);
    expect(dropped()).toBe(0);
    expect(node.peers().map((peer) => peer.iid)).toEqual([iid]);
  });

  it('lists a node of another major version as incompatible, with a warning naming both versions', async () => {
    const iid = randomUUID();
    const other = { major: ours.major + 1, minor: 3 };
    const added = waitForEvent(node, 'peer:added', (p: PeerRecord) => p.iid === iid);
    await send(
      advertToArray(testAdvert({ iid, id: 'next', protocol: other })),
      randomBytes(8).toString('hex'),
      1,
    );
    const [peer] = (await added) as [PeerRecord];
    expect(peer.compatible).toBe(false);
    expect(peer.protocol).toEqual(other);
    expect(node.stats().incompatiblePeers).toBe(1);
    const warning = warnings.find((w) => w.code === 'KABLE_INCOMPATIBLE_PEER');
    expect(warning?.message).toContain(
      `speaks data-plane protocol v${other.major}.3, this node v${ours.major}.${ours.minor}`,
    );
  });
});
