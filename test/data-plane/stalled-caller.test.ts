import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { call } from '../support/echo-server.js';
import { runFixture, type ChildFixture } from '../support/processes.js';

// A caller whose event loop stalls right after it connects, for longer than the server's helloTimeout:
// the server has said hello and closed the connection by the time the caller reads either. What the
// caller queued meanwhile was never sent, so it must fail as unreachable (retryable on another replica),
// not as lost after sending (which the caller must not retry, and reports to the application).
const helloTimeout = 100;
let server: ChildFixture;
let port: number;

beforeAll(async () => {
  server = runFixture('test/data-plane/fixtures/echo-server-process.ts', [JSON.stringify({ helloTimeout })]);
  port = (await server.ready).port as number;
});

afterAll(async () => {
  server.child.stdin?.end();
  await server.exited;
});

it('fails what a stalled caller queued as unreachable when the server closed before it was sent', async () => {
  const caller = new PeerConnection('127.0.0.1', port, {});
  const outcome = call(caller, 'echo', 'queued while stalled').then(
    () => undefined,
    (error: unknown) => error as { code?: string; retryable?: boolean },
  );
  // The connect is issued on the next tick; the stall comes right after it, before any socket is polled.
  await new Promise<void>((resolve) =>
    process.nextTick(() => {
      const until = performance.now() + 8 * helloTimeout;
      while (performance.now() < until) {
        // A stalled process: no timer runs, no socket is read.
      }
      resolve();
    }),
  );
  const failure = await outcome;
  caller.close();
  const stats = server.next('stats');
  server.send('stats');
  // The server did close it at its hello deadline (the caller's hello came too late).
  expect(((await stats).stats as Record<string, number>)['dropped.helloTimeout']).toBe(1);
  expect(failure).toMatchObject({ code: 'KABLE_PEER_UNREACHABLE', retryable: true });
});
