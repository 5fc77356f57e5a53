import { describe, expect, it } from '@jest/globals';
import { KableDataPlaneError } from '../../lib/data-plane/data-plane-errors.js';
import type { ReplyChannel } from '../../lib/data-plane/data-plane-server.js';
import { createFrameEncoder } from '../../lib/data-plane/frame-encoder.js';
import type { PeerConnection, ReplyObserver } from '../../lib/data-plane/peer-connection.js';
import { MAX_ENCODED_DEPTH, unencodablePart } from '../../lib/data-plane/unencodable.js';
import { dataPlanePairs } from '../support/data-plane-pair.js';

// Values MessagePack cannot encode (a bigint, a circular object, one nested too deep), on both sides of
// a real TCP data plane: the reply or request fails alone with KABLE_UNENCODABLE, nothing else changes.

/** Objects nested ({ a: { a: ... true } }) so that the innermost value is at `levels` (the top is 1). */
function nested(levels: number): unknown {
  let value: unknown = true;
  for (let level = 1; level < levels; level++) value = { a: value };
  return value;
}

function circular(): Record<string, unknown> {
  const value: Record<string, unknown> = { name: 'loop' };
  value.self = value;
  return value;
}

interface Outcome {
  values: unknown[];
  error?: unknown;
  completed: boolean;
}

/** Sends a request; the promise settles when its reply ends. */
function ask(connection: PeerConnection, pattern: string, data: unknown): Promise<Outcome> {
  return new Promise((resolve) => {
    const outcome: Outcome = { values: [], completed: false };
    const observer: ReplyObserver = {
      next: (value) => outcome.values.push(value),
      error: (error) => resolve({ ...outcome, error }),
      complete: () => resolve({ ...outcome, completed: true }),
    };
    connection.request(pattern, data, undefined, observer);
  });
}

describe('finding what MessagePack cannot encode', () => {
  it('names the path and the type of the offending value', () => {
    expect(unencodablePart({ id: 1n })).toBe('id: BigInt');
    expect(unencodablePart({ items: [{ price: 2 }, { price: 3n }] })).toBe('items[1].price: BigInt');
    expect(unencodablePart({ 'a key': { run: () => 1 } })).toBe('["a key"].run: Function');
    expect(unencodablePart([Symbol('s')])).toBe('[0]: Symbol');
    expect(unencodablePart(5n)).toBe('(the value itself): BigInt');
    expect(unencodablePart({ owner: circular() })).toBe('owner.self: circular reference');
    expect(unencodablePart(nested(MAX_ENCODED_DEPTH + 1))).toBe(
      `a.a.a.a.a.a... (${MAX_ENCODED_DEPTH} levels): nested deeper than ${MAX_ENCODED_DEPTH} levels`,
    );
  });

  it('agrees with the codec: what it finds fails to encode, what it passes encodes', () => {
    const shared = { n: 1 };
    const encodable = [
      nested(MAX_ENCODED_DEPTH),
      { at: new Date(0), bytes: Buffer.from('ab'), skipped: undefined, list: [null, true, 'x', 1.5] },
      { left: shared, right: shared },
    ];
    const unencodable = [
      { id: 1n },
      circular(),
      nested(MAX_ENCODED_DEPTH + 1),
      { run: () => 1 },
      [Symbol('s')],
    ];
    const encoder = createFrameEncoder();
    for (const value of encodable) {
      expect(() => encoder.encode(value)).not.toThrow();
      expect(unencodablePart(value)).toBeUndefined();
    }
    for (const value of unencodable) {
      expect(() => encoder.encode(value)).toThrow();
      expect(unencodablePart(value)).toEqual(expect.any(String));
    }
  });
});

describe('a reply MessagePack cannot encode', () => {
  const connect = dataPlanePairs();

  it('fails alone with KABLE_UNENCODABLE; the replies around it in the same batch are intact', async () => {
    const large = 'y'.repeat(2 * 1024 * 1024); // over the size at which the writer lists an encoding as is
    const connection = await connect((request, reply) => {
      if (request.pattern === 'bad')
        reply.next(request.data === 'large' ? { large, id: 1n } : { id: 1n }, true);
      else reply.next(request.data, true);
    });
    expect((await ask(connection, 'echo', 'warm')).values).toEqual(['warm']);
    // Sent in one tick: read by the server in one chunk, answered in one batch.
    const replies = await Promise.all([
      ask(connection, 'echo', { n: 1, text: 'z'.repeat(300) }),
      ask(connection, 'bad', 'small'),
      ask(connection, 'echo', [1, 2, 3]),
      ask(connection, 'bad', 'large'),
      ask(connection, 'echo', { big: large }),
      ask(connection, 'echo', 7),
    ]);
    expect(replies[0]).toEqual({ values: [{ n: 1, text: 'z'.repeat(300) }], completed: true });
    expect(replies[2]).toEqual({ values: [[1, 2, 3]], completed: true });
    expect(replies[4]).toEqual({ values: [{ big: large }], completed: true });
    expect(replies[5]).toEqual({ values: [7], completed: true });
    for (const failed of [replies[1], replies[3]]) {
      expect(failed.values).toEqual([]);
      expect(failed.error).toEqual({
        status: 'error',
        code: 'KABLE_UNENCODABLE',
        message: 'The reply to "bad" cannot be encoded as MessagePack (id: BigInt); it was not sent.',
      });
    }
    expect(connection.inFlight).toBe(0);
  });

  it('ends a stream emitting one with that error and cancels it; an unencodable error is replaced too', async () => {
    let cancels = 0;
    let channel: ReplyChannel | undefined;
    const connection = await connect((request, reply) => {
      if (request.pattern === 'throws') {
        reply.error({ status: 'error', detail: { depth: nested(MAX_ENCODED_DEPTH + 5) } });
        return;
      }
      channel = reply;
      reply.next({ n: 1 });
      return () => cancels++;
    });
    const stream = ask(connection, 'stream', undefined);
    await new Promise<void>((resolve) => {
      const wait = setInterval(() => {
        if (channel === undefined) return;
        clearInterval(wait);
        resolve();
      }, 1);
    });
    channel!.next({ loop: circular() });
    channel!.next({ n: 2 }); // after the end: ignored
    const outcome = await stream;
    expect(outcome.values).toEqual([{ n: 1 }]);
    expect(outcome.error).toMatchObject({
      code: 'KABLE_UNENCODABLE',
      message: expect.stringContaining(
        'A value of the stream "stream" cannot be encoded as MessagePack (loop.self: circular reference)',
      ),
    });
    expect(cancels).toBe(1);
    expect(channel!.closed).toBe(true);
    expect((await ask(connection, 'throws', undefined)).error).toMatchObject({
      code: 'KABLE_UNENCODABLE',
      message: expect.stringContaining(
        'The error reply to "throws" cannot be encoded as MessagePack (detail.depth.a.a.a.a...',
      ),
    });
  });
});

describe('a request or event MessagePack cannot encode', () => {
  const connect = dataPlanePairs();

  it('fails its observer at once, not retryable, and leaves nothing behind', async () => {
    const connection = await connect((request, reply) => reply.next(request.data, true));
    expect((await ask(connection, 'echo', 1)).values).toEqual([1]);
    let failure: unknown;
    const observer: ReplyObserver = {
      next: () => undefined,
      complete: () => undefined,
      error: (error) => {
        failure = error;
      },
    };
    let cancel: (() => void) | undefined;
    expect(() => {
      cancel = connection.request('echo', { user: { id: 7n } }, undefined, observer);
    }).not.toThrow();
    expect(failure).toBeInstanceOf(KableDataPlaneError);
    expect(failure).toMatchObject({
      code: 'KABLE_UNENCODABLE',
      retryable: false,
      message: 'Request "echo" not sent: its data cannot be encoded as MessagePack (user.id: BigInt).',
    });
    // Metadata is searched too.
    connection.request('echo', 1, { trace: circular() }, observer);
    expect(failure).toMatchObject({
      message: expect.stringContaining('(metadata.trace.self: circular reference)'),
    });
    expect(connection.inFlight).toBe(0);
    expect(connection.holding.pending).toBe(0);
    cancel!();
    // Later requests, and a close with nothing pending, work as if it never happened.
    const later = await Promise.all([ask(connection, 'echo', 'a'), ask(connection, 'echo', 'b')]);
    expect(later.map((outcome) => outcome.values)).toEqual([['a'], ['b']]);
    failure = undefined;
    expect(() => connection.close()).not.toThrow();
    expect(failure).toBeUndefined();
  });

  it('rejects an event at once, not retryable, and leaves nothing behind', async () => {
    const connection = await connect((request, reply) => reply.next(request.data, true));
    expect((await ask(connection, 'echo', 1)).values).toEqual([1]);
    await expect(
      connection.sendEvent('noted', { deep: nested(MAX_ENCODED_DEPTH + 2) }),
    ).rejects.toMatchObject({
      code: 'KABLE_UNENCODABLE',
      retryable: false,
      message: expect.stringContaining(
        'Event "noted" not sent: its data cannot be encoded as MessagePack (deep.a.a',
      ),
    });
    expect(connection.holding.emitsWaiting).toBe(0);
    await connection.sendEvent('noted', { fine: true });
    expect((await ask(connection, 'echo', 2)).values).toEqual([2]);
  });
});

describe('request ids after 2^32 requests', () => {
  const connect = dataPlanePairs();

  it('skip an id still held by a long-lived stream', async () => {
    const streams: ReplyChannel[] = [];
    const connection = await connect((request, reply) => {
      if (request.pattern !== 'stream') return reply.next(request.data, true);
      streams.push(reply);
      reply.next('open');
    });
    const values: unknown[] = [];
    let streamError: unknown;
    connection.request('stream', undefined, undefined, {
      next: (value) => values.push(value),
      error: (error) => {
        streamError = error;
      },
      complete: () => undefined,
    });
    expect((await ask(connection, 'echo', 'first')).values).toEqual(['first']); // id 2
    expect(values).toEqual(['open']);
    // As after 2^32 - 2 more requests: the next ids are 2^32 - 2, 2^32 - 1, then the wrap.
    (connection as unknown as { nextId: number }).nextId = 0xfffffffe;
    for (const data of ['x', 'y', 'after the wrap', 'and on']) {
      expect(await ask(connection, 'echo', data)).toEqual({ values: [data], completed: true });
    }
    expect(streamError).toBeUndefined();
    streams[0].next('still open', true);
    await new Promise<void>((resolve) => {
      const wait = setInterval(() => {
        if (values.length < 2) return;
        clearInterval(wait);
        resolve();
      }, 1);
    });
    expect(values).toEqual(['open', 'still open']);
    expect(connection.inFlight).toBe(0);
  });
});
