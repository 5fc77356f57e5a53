import { afterEach, describe, expect, it } from '@jest/globals';
import { InvalidMessageException } from '@nestjs/microservices/errors/invalid-message.exception.js';
import { firstValueFrom, lastValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { NO_MESSAGE_HANDLER } from '../../lib/nest/kable.constants.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { waitUntil } from '../support/events.js';
import { InProcessCluster, serverOf } from './fixtures/in-process.js';
import { MathLedger, MathModule } from './fixtures/math.module.js';

const cluster = new InProcessCluster();
afterEach(() => cluster.close());

/** The client's pattern router, to count requests waiting for a node. */
function waitingOf(client: KableClientProxy): number {
  return (client as unknown as { router: { waiting: number } }).router.waiting;
}

function statsOf(app: Parameters<typeof serverOf>[0]): Record<string, number> {
  return serverOf(app).node.stats();
}

describe('a pattern no node serves', () => {
  it('fails with KABLE_NO_NODE naming the pattern and the known services when timeout ends the wait', async () => {
    await cluster.service(MathModule, 'math');
    const proxy = cluster.client({ pickTimeout: 10_000, timeout: 300 });
    await proxy.whenServed('who');
    const started = Date.now();
    await expect(firstValueFrom(proxy.send('nobody-serves-this', 1))).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message:
        'No RUNNING node handles pattern "nobody-serves-this" (waited 300 ms, option: timeout). ' +
        'Known services: math (1 RUNNING).',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(295);
    expect(waitingOf(proxy)).toBe(0);
  });

  it('fails with KABLE_NO_NODE when pickTimeout ends the wait, naming services in every state', async () => {
    const [, busy] = await Promise.all([
      cluster.service(MathModule, 'math'),
      cluster.service(MathModule, 'orders'),
    ]);
    serverOf(busy).node.stop('maintenance');
    const proxy = cluster.client({ pickTimeout: 200, timeout: 5000 });
    await proxy.whenServed('who');
    await waitUntil(
      () => proxy.node.peers().some((peer) => peer.id === 'orders' && peer.state === 'STOPPED'),
      [proxy.node],
      ['peer:state', 'peer:added'],
      5000,
      'the client to see orders STOPPED',
    );
    await expect(firstValueFrom(proxy.send({ cmd: 'nobody' }, 1))).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message: expect.stringMatching(
        /^No RUNNING node handles pattern "\{"cmd":"nobody"\}" \(waited 200 ms, option: pickTimeout\)\. Known services: math \(1 RUNNING\), orders \(1 STOPPED\)\.$/,
      ),
    });
  });

  it('names the target service when the client has one and it is not there', async () => {
    const proxy = cluster.client({ target: 'math', pickTimeout: 5000, timeout: 150 });
    await expect(firstValueFrom(proxy.send('who', 1))).rejects.toMatchObject({
      code: 'KABLE_NO_NODE',
      message:
        'No RUNNING node of service "math" handles pattern "who" (waited 150 ms, option: timeout). Known services: none.',
    });
  });
});

describe('bad input at the API', () => {
  it("raises Nest's own InvalidMessageException for a null or undefined pattern or data", async () => {
    const proxy = cluster.client();
    for (const [pattern, data] of [
      [null, 1],
      [undefined, 1],
      ['sum', null],
      ['sum', undefined],
    ] as const) {
      await expect(firstValueFrom(proxy.send(pattern, data))).rejects.toBeInstanceOf(InvalidMessageException);
      await expect(lastValueFrom(proxy.emit(pattern, data))).rejects.toBeInstanceOf(InvalidMessageException);
    }
    // Nothing was attempted: the client did not even join.
    expect(proxy.node.state.state).toBe('DOWN');
  });
});

describe('serializer and deserializer', () => {
  it('refuses codec options at construction, saying what to do instead', () => {
    const identity = { serialize: (value: unknown) => value };
    expect(() => new KableClientProxy({ serializer: identity } as never)).toThrow(
      /KableClientProxy does not take a "serializer": Kable frames carry .* as MessagePack .* overrides serializeResponse\(\)\/serializeError\(\)/,
    );
    expect(() => new KableClientProxy({ deserializer: { deserialize: (v: unknown) => v } } as never)).toThrow(
      /does not take a "deserializer"/,
    );
    expect(() => new KableServer({ id: 'math', serializer: identity } as never)).toThrow(
      /KableServer does not take a "serializer": .* in the handler, an interceptor or an exception filter/,
    );
  });

  it('passes replies and errors through serializeResponse and serializeError overrides', async () => {
    class WrappingClient extends KableClientProxy {
      protected override serializeResponse(response: unknown): unknown {
        return { wrapped: response };
      }
      protected override serializeError(error: unknown): unknown {
        return { failed: error };
      }
    }
    await cluster.service(MathModule, 'math');
    const proxy = cluster.client({ target: 'math' }, WrappingClient);
    await proxy.whenServed('async');
    expect(await firstValueFrom(proxy.send('async', 21))).toEqual({ wrapped: 42 });
    await expect(firstValueFrom(proxy.send('rpc-error', {}))).rejects.toEqual({
      failed: { code: 'E_MATH', reason: 'refused on purpose' },
    });
    await expect(firstValueFrom(proxy.send('nobody', {}))).rejects.toEqual({ failed: NO_MESSAGE_HANDLER });
    // Kable's own errors too: the caller sees one shape whatever failed.
    const lost = cluster.client({ target: 'nowhere', timeout: 100 }, WrappingClient);
    await expect(firstValueFrom(lost.send('async', 1))).rejects.toEqual({
      failed: expect.objectContaining({ code: 'KABLE_NO_NODE' }),
    });
  });
});
