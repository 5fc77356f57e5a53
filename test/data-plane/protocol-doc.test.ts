import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { advertFromArray, decodeValue } from '../../lib/discovery/advert-codec.js';
import { AdvertSeal, parseKeys } from '../../lib/discovery/advert-seal.js';
import { FrameDecoder } from '../../lib/data-plane/frame-decoder.js';
import { FrameType, parseFrame } from '../../lib/data-plane/frames.js';
import { readNextFrame } from '../../lib/data-plane/next-frame.js';
import { readRequestFrame } from '../../lib/data-plane/request-frame.js';
import { PROTOCOL_VERSION } from '../../lib/node/protocol-version.js';

// docs/protocol.md is a specification someone could implement from: every example in it (a ```hex block,
// then the ```json block of the fields it stands for) is decoded here by the library's own readers, and
// must give exactly those fields. Every frame type has an example, and so do an unknown type and an advert.

const doc = readFileSync('docs/protocol.md', 'utf8');

interface Example {
  line: number;
  bytes: Buffer;
  expected: { frame?: Record<string, unknown>; datagram?: DatagramFields };
}

interface DatagramFields {
  namespace: string;
  key: string | null;
  boot: string;
  seq: number;
  time: number;
  advert: Record<string, unknown>;
}

function examples(): Example[] {
  const found: Example[] = [];
  const blocks = [...doc.matchAll(/^```(hex|json)\n([\s\S]*?)^```$/gm)];
  for (let i = 0; i < blocks.length; i++) {
    const [, kind, body] = blocks[i];
    if (kind !== 'hex') continue;
    const line = doc.slice(0, blocks[i].index).split('\n').length;
    const next = blocks[i + 1];
    if (next?.[1] !== 'json')
      throw new Error(`docs/protocol.md:${line}: a hex example without its json fields`);
    const hex = body.replace(/\s+/g, '');
    if (!/^([0-9a-f]{2})+$/.test(hex)) throw new Error(`docs/protocol.md:${line}: not hex bytes`);
    found.push({
      line,
      bytes: Buffer.from(hex, 'hex'),
      expected: JSON.parse(next[2]) as Example['expected'],
    });
  }
  return found;
}

/** The one frame in `bytes`, as the codec and parseFrame read it; undefined fields dropped. */
function decodeFrame(bytes: Buffer): { value: unknown; frame: unknown } {
  const values: unknown[] = [];
  const failure = new FrameDecoder(1 << 24).push(bytes, (value) => values.push(value));
  expect(failure).toBeUndefined();
  expect(values).toHaveLength(1);
  return { value: values[0], frame: parseFrame(values[0]) };
}

/** What the hand-written readers (the ones used on the hot path) make of a REQUEST or NEXT frame. */
function readByHand(bytes: Buffer, type: unknown): Record<string, unknown> | undefined {
  const end = bytes.length;
  let read: Record<string, unknown> | undefined;
  if (type === FrameType.REQUEST) {
    const took = readRequestFrame(bytes, 4, end, (id, pattern, data, metadata) => {
      read = { type, id, pattern, data, metadata };
    });
    expect(took).toBe(true);
  }
  if (type === FrameType.NEXT) {
    const took = readNextFrame(bytes, 4, end, (id, value, last) => {
      read = { type, id, value, last };
    });
    expect(took).toBe(true);
  }
  return read;
}

describe('docs/protocol.md', () => {
  const all = examples();

  it('documents protocol version of this build', () => {
    expect(doc).toContain(
      `# Kable wire protocol, version ${PROTOCOL_VERSION.major}.${PROTOCOL_VERSION.minor}`,
    );
  });

  it('has an example of every frame type, of an unknown type, and of a plain and a sealed advert', () => {
    const types = new Set(all.map((example) => example.expected.frame?.type).filter((t) => t !== undefined));
    expect([...types].sort()).toEqual([...Object.values(FrameType), 'unknown'].sort());
    const keys = all.flatMap((example) => (example.expected.datagram ? [example.expected.datagram.key] : []));
    expect(keys).toContain(null);
    expect(keys.some((key) => typeof key === 'string')).toBe(true);
  });

  it.each(examples().map((example): [number, Example] => [example.line, example]))(
    'the example at line %i decodes to its documented fields',
    (_line, example) => {
      const { frame, datagram } = example.expected;
      if (frame !== undefined) {
        // The length prefix is the body's length.
        expect(example.bytes.readUInt32BE(0)).toBe(example.bytes.length - 4);
        const decoded = decodeFrame(example.bytes);
        expect(decoded.frame).toEqual(frame);
        const byHand = readByHand(example.bytes, frame.type);
        if (byHand !== undefined) expect(byHand).toEqual(frame);
        return;
      }
      if (datagram === undefined) throw new Error(`line ${example.line}: neither a frame nor a datagram`);
      const keys = datagram.key === null ? [] : parseKeys(datagram.key, undefined);
      const payload = new AdvertSeal(datagram.namespace, keys).open(example.bytes);
      if (typeof payload === 'string')
        throw new Error(`line ${example.line}: the datagram did not open: ${payload}`);
      const [boot, seq, time, body, ...rest] = decodeValue(payload) as unknown[];
      expect({ boot, seq, time, rest }).toEqual({
        boot: datagram.boot,
        seq: datagram.seq,
        time: datagram.time,
        rest: [],
      });
      expect(advertFromArray(body)).toEqual(datagram.advert);
    },
  );
});
