import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import {
  advertFromArray,
  advertToArray,
  decodeValue,
  encodeValue,
} from '../../lib/discovery/advert-codec.js';
import { AdvertSeal, parseKeys } from '../../lib/discovery/advert-seal.js';
import { ReplayGuard } from '../../lib/discovery/replay-guard.js';
import type { Advert } from '../../lib/node/advert.js';
import { MAX_PROBED } from '../../lib/node/silence-probe.js';

const advert: Advert = {
  event: 'update',
  id: 'math',
  iid: '5b7b0a4e-2f3c-4a57-9a65-9f3f3c2b8b11',
  replica: true,
  host: '127.0.0.1',
  port: 41234,
  hostname: 'box',
  pid: 4242,
  index: 2 ** 47 + 3,
  startedAt: 1_763_000_000_000,
  state: 'DOING_SOMETHING',
  reason: 'rebuilding',
  since: 1_763_000_000_500,
  seq: 17,
  patterns: 'abcdefghijklmnop',
  meta: { zone: 'a', weight: 2 },
  protocol: { major: 1, minor: 0 },
};

const keyA = randomBytes(32).toString('base64');
const keyB = randomBytes(32).toString('base64');

describe('advert codec', () => {
  it('round-trips every field, keeping indexes above 2^32 exact', () => {
    expect(advertFromArray(decodeValue(encodeValue(advertToArray(advert))))).toEqual(advert);
    const { reason: _reason, meta: _meta, ...bare } = advert;
    expect(advertFromArray(decodeValue(encodeValue(advertToArray(bare))))).toEqual(bare);
    const probing = { ...advert, probe: [0, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER] };
    expect(advertToArray(probing)).toHaveLength(18);
    expect(advertFromArray(decodeValue(encodeValue(advertToArray(probing))))).toEqual(probing);
  });

  it('refuses a probe list that is empty, too long or not of indexes', () => {
    const good = advertToArray(advert);
    const withProbe = (probe: unknown) => [...good.slice(0, 16), probe, ...good.slice(17)];
    for (const probe of [[], new Array(MAX_PROBED + 1).fill(1), [1.5], [-1], ['a'], 7, { 0: 1 }]) {
      expect(advertFromArray(withProbe(probe))).toBeUndefined();
      // The same list in an advert from before versions were advertised (seventeen fields).
      expect(advertFromArray([...good.slice(0, 16), probe])).toBeUndefined();
    }
    expect(advertFromArray([...good.slice(0, 16), null])).toBeUndefined();
    expect(advertFromArray(withProbe(new Array(MAX_PROBED).fill(1)))).toBeDefined();
  });

  it('refuses wrong shapes field by field', () => {
    const good = advertToArray(advert);
    for (let field = 0; field < good.length; field++) {
      const bad = [...good];
      bad[field] = field === 11 || field === 15 ? 12345 : { wrong: true };
      expect(advertFromArray(bad)).toBeUndefined();
    }
    expect(advertFromArray(good.slice(0, 15))).toBeUndefined();
    expect(advertFromArray('advert')).toBeUndefined();
  });
});

describe('advert seal', () => {
  const payload = encodeValue(advertToArray(advert));

  it('opens what it sealed, under the same namespace and key', () => {
    const seal = new AdvertSeal('prod', parseKeys(keyA, undefined));
    expect(decodeValue(seal.open(seal.seal(payload)) as Buffer)).toEqual(advertToArray(advert));
  });

  it('rejects a change to any single byte', () => {
    const seal = new AdvertSeal('prod', parseKeys(keyA, undefined));
    const datagram = seal.seal(payload);
    for (let i = 0; i < datagram.length; i++) {
      const tampered = Buffer.from(datagram);
      tampered[i] ^= 0x01;
      expect(typeof seal.open(tampered)).toBe('string');
    }
  });

  it('keeps namespaces and keys apart', () => {
    const prod = new AdvertSeal('prod', parseKeys(keyA, undefined));
    expect(new AdvertSeal('test', parseKeys(keyA, undefined)).open(prod.seal(payload))).toBe(
      'otherNamespace',
    );
    expect(new AdvertSeal('prod', parseKeys(keyB, undefined)).open(prod.seal(payload))).toBe('unknownKey');
    expect(new AdvertSeal('prod', []).open(prod.seal(payload))).toBe('sealedUnexpected');
    expect(prod.open(new AdvertSeal('prod', []).seal(payload))).toBe('unsealed');
  });

  it('rotates keys: seals with the first, opens with any', () => {
    const old = new AdvertSeal('prod', parseKeys(keyA, undefined));
    const rotating = new AdvertSeal('prod', parseKeys(undefined, [keyB, keyA]));
    const renewed = new AdvertSeal('prod', parseKeys(keyB, undefined));
    expect(rotating.open(old.seal(payload))).toBeInstanceOf(Buffer);
    expect(renewed.open(rotating.seal(payload))).toBeInstanceOf(Buffer);
    expect(old.open(rotating.seal(payload))).toBe('unknownKey');
  });

  it('refuses keys that are not 32 bytes of base64, saying how to make one', () => {
    expect(() => parseKeys(randomBytes(16).toString('base64'), undefined)).toThrow(/32 random bytes/);
    expect(() => parseKeys('not base64!', undefined)).toThrow(/"key" must be 32 random bytes/);
    expect(() => parseKeys(keyA, [keyB])).toThrow(/either "key" or "keys"/);
    expect(() => parseKeys(undefined, [keyA, 'short'])).toThrow(/"keys\[1\]"/);
  });
});

describe('replay guard', () => {
  it('accepts only newer sequence numbers per sender boot, within the time window', () => {
    const guard = new ReplayGuard({ window: 1000 });
    const now = 1_000_000;
    expect(guard.check('boot-a', 1, now, now)).toBeUndefined();
    expect(guard.check('boot-a', 1, now, now)).toBe('replayed');
    expect(guard.check('boot-a', 0, now, now)).toBe('replayed');
    expect(guard.check('boot-a', 2, now, now)).toBeUndefined();
    expect(guard.check('boot-b', 1, now, now)).toBeUndefined();
    expect(guard.check('boot-c', 1, now - 1001, now)).toBe('outsideTimeWindow');
    expect(guard.check('boot-c', 1, now + 1001, now)).toBe('outsideTimeWindow');
  });

  it('remembers a bounded number of senders', () => {
    const guard = new ReplayGuard({ maxSenders: 2 });
    const now = Date.now();
    guard.check('a', 5, now);
    guard.check('b', 5, now);
    guard.check('c', 5, now);
    // "a" was forgotten, so its old sequence is accepted again; "c" is still remembered.
    expect(guard.check('a', 1, now)).toBeUndefined();
    expect(guard.check('c', 5, now)).toBe('replayed');
  });
});
