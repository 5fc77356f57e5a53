import { afterEach } from '@jest/globals';
import { DataPlaneServer, type DataPlaneHandler } from '../../lib/data-plane/data-plane-server.js';
import { PeerConnection } from '../../lib/data-plane/peer-connection.js';

/**
 * For a test file: `connect(request)` serves `request` on a loopback data-plane server and returns a
 * connection to it; both are closed after each test.
 */
export function dataPlanePairs(): (request: DataPlaneHandler['request']) => Promise<PeerConnection> {
  const servers: DataPlaneServer[] = [];
  const connections: PeerConnection[] = [];
  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.close();
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });
  return async (request) => {
    const server = new DataPlaneServer({
      request,
      event: () => undefined,
      describe: () => ({ messages: [], events: [] }),
    });
    servers.push(server);
    const { port } = await server.listen('127.0.0.1', 0);
    const connection = new PeerConnection('127.0.0.1', port, {});
    connections.push(connection);
    return connection;
  };
}
