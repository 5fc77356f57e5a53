import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { firstValueFrom } from 'rxjs';
import { KableDataPlaneError } from '../../lib/data-plane/data-plane-errors.js';
import type { KableServer } from '../../lib/nest/kable.server.js';
import { waitUntil } from '../support/events.js';
import { InProcessCluster, serverOf } from './fixtures/in-process.js';
import { UnencodableLedger, UnencodableModule } from './fixtures/unencodable.module.js';
import { outcome } from '../support/outcome.js';

// Real Nest apps and TCP data planes in one process: handlers returning what MessagePack cannot encode
// (a bigint, a circular object, one nested too deep). Before, each of these took the server process down
// (an unhandled rejection or uncaught exception) or left the caller waiting; now the caller gets a
// KABLE_UNENCODABLE error at once and the server serves on.

describe.each(['direct', 'hooks'] as const)(
  'a handler returning what MessagePack cannot encode (%s replies)',
  (replies) => {
    const cluster = new InProcessCluster();
    let warnings: string[] = [];

    afterEach(async () => {
      await cluster.close();
      warnings = [];
    });

    async function service(): Promise<INestMicroservice> {
      return cluster.service(UnencodableModule, 'rows', {}, (strategy: KableServer) => {
        // The server's logger: what an app's log would show.
        (strategy as unknown as { logger: unknown }).logger = {
          log: () => undefined,
          error: () => undefined,
          warn: (message: string) => warnings.push(message),
        };
        if (replies === 'hooks') strategy.setOnProcessingStartHook((_transport, _context, done) => done());
      });
    }

    it('answers KABLE_UNENCODABLE naming the value, warns once, and serves on', async () => {
      const app = await service();
      const rows = cluster.client({ target: 'rows' });
      await rows.whenServed('echo');
      const cases: Array<[pattern: string, part: string]> = [
        ['bigint.async', 'id: BigInt'],
        ['bigint.sync', 'id: BigInt'],
        ['bigint.intercepted', '[1].id: BigInt'],
        ['circular', 'self: circular reference'],
        ['deep', 'child.child.child.child.child.child... (100 levels): nested deeper than 100 levels'],
      ];
      for (const [pattern, part] of cases) {
        const { values, error } = await outcome(rows.send(pattern, {}));
        expect(values).toEqual([]);
        expect(error).toEqual({
          status: 'error',
          code: 'KABLE_UNENCODABLE',
          message: `The reply to "${pattern}" cannot be encoded as MessagePack (${part}); it was not sent.`,
        });
        expect(await firstValueFrom(rows.send('echo', { after: pattern }))).toEqual({ after: pattern });
      }
      // Within the warning limiter's second: logged once, all counted.
      const logged = warnings.filter((line) => line.startsWith('unencodableReply: '));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(
        'The reply to "bigint.async" cannot be encoded as MessagePack (id: BigInt)',
      );
      expect(serverOf(app).node.stats()['dataPlane.dropped.unencodableReply']).toBe(cases.length);
    });

    it('ends a stream emitting one with that error, and unsubscribes it', async () => {
      const app = await service();
      const ledger = app.get(UnencodableLedger);
      const rows = cluster.client({ target: 'rows' });
      await rows.whenServed('stream');
      const { values, error } = await outcome(rows.send('stream', {}));
      expect(values).toEqual([{ n: 0 }]);
      expect(error).toMatchObject({
        code: 'KABLE_UNENCODABLE',
        message:
          'A value of the stream "stream" cannot be encoded as MessagePack (id: BigInt); it was not sent.',
      });
      await waitUntil(
        () => ledger.unsubscribed === 1,
        [ledger],
        ['changed'],
        5000,
        'the stream unsubscribed',
      );
      expect(await firstValueFrom(rows.send('echo', 'on'))).toBe('on');
    });
  },
);

describe('a request or event whose data MessagePack cannot encode', () => {
  const cluster = new InProcessCluster();
  afterEach(() => cluster.close());

  it('fails on its Observable with KABLE_UNENCODABLE, not retried; later ones go through', async () => {
    const app = await cluster.service(UnencodableModule, 'rows');
    const ledger = app.get(UnencodableLedger);
    const rows = cluster.client({ target: 'rows' });
    await rows.whenServed('echo');
    const sent = await outcome(rows.send('echo', { id: 5n }));
    expect(sent.error).toBeInstanceOf(KableDataPlaneError);
    expect(sent.error).toMatchObject({
      code: 'KABLE_UNENCODABLE',
      retryable: false,
      message: 'Request "echo" not sent: its data cannot be encoded as MessagePack (id: BigInt).',
    });
    const emitted = await outcome(rows.emit('noted', { id: 6n }));
    expect(emitted.error).toMatchObject({
      code: 'KABLE_UNENCODABLE',
      message: 'Event "noted" not sent: its data cannot be encoded as MessagePack (id: BigInt).',
    });
    expect(await firstValueFrom(rows.send('echo', 'fine'))).toBe('fine');
    await firstValueFrom(rows.emit('noted', 'fine'));
    await waitUntil(() => ledger.events.length === 1, [ledger], ['changed'], 5000, 'the event');
    expect(ledger.events).toEqual(['fine']);
  });
});
