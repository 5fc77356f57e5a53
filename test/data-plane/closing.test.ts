import { afterEach, describe, expect, it } from '@jest/globals';
import { DataPlaneServer } from '../../lib/data-plane/data-plane-server.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';
import { PeerPool } from '../../lib/data-plane/peer-pool.js';
import { call, echoServer } from '../support/echo-server.js';

// Issue 29, defect 7: closing leaves nothing behind. A server's close() resolves once its connections
// are gone (not merely once it stopped listening), and a client's pool closes the connections it left
// to finish their requests too.
const servers: DataPlaneServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

function start(options: ConstructorParameters<typeof DataPlaneServer>[1] = {}) {
  return echoServer(servers, options);
}

describe('closing the data plane', () => {
  it('resolves a server close() only once every connection closed and is untracked', async () => {
    const { server, port } = await start();
    const callers = [1, 2, 3].map(() => new PeerConnection('127.0.0.1', port, {}));
    try {
      await Promise.all(callers.map((caller, i) => call(caller, 'echo', i)));
      expect(server.stats().openConnections).toBe(3);
      await server.close();
      expect(server.stats().openConnections).toBe(0);
    } finally {
      for (const caller of callers) caller.close();
    }
  });

  it('closes, with the pool, a connection left to finish its requests after its peer was dropped', async () => {
    const { server, port, held } = await start();
    const pool = new PeerPool({});
    const peer = { iid: 'evicted', host: '127.0.0.1', port };
    const connection = pool.get(peer);
    const outcome = call(connection, 'hold', 1).catch((error: unknown) => error);
    expect(await call(connection, 'echo', 0)).toBe(0);
    expect(held).toHaveLength(1);
    // Evicted while still answering: left to finish, out of the pool's table.
    pool.drop(peer.iid, 'was evicted by discovery', true);
    expect(connection.closed).toBe(false);
    expect(pool.stats().connectionsRetiring).toBe(1);
    pool.close();
    expect(connection.closed).toBe(true);
    expect(await outcome).toMatchObject({ code: 'KABLE_PEER_LOST' });
    expect(pool.stats().connectionsRetiring).toBe(0);
    await server.close();
    expect(held[0].closed).toBe(true);
  });
});
