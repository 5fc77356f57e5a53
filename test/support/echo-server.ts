import { DataPlaneServer, type ReplyChannel } from '../../lib/data-plane/data-plane-server.js';
import type { PeerConnection, ReplyObserver } from '../../lib/data-plane/peer-connection.js';

/**
 * A data-plane server on loopback that echoes each request's data, except `hold`, whose reply channels
 * are kept in `held` for the test to answer (or never), and `make`, answered with a string of as many
 * characters as its data says. Pushed onto `servers` for the test's teardown.
 */
export async function echoServer(
  servers: Array<{ close(): unknown }>,
  options: ConstructorParameters<typeof DataPlaneServer>[1] = {},
): Promise<{ server: DataPlaneServer; port: number; held: ReplyChannel[] }> {
  const held: ReplyChannel[] = [];
  const server = new DataPlaneServer(
    {
      request(request, reply) {
        if (request.pattern === 'hold') held.push(reply);
        else if (request.pattern === 'make') reply.next('x'.repeat(request.data as number), true);
        else reply.next(request.data, true);
      },
      event: () => undefined,
      describe: () => ({ messages: [], events: [] }),
    },
    options,
  );
  servers.push(server);
  const { port } = await server.listen('127.0.0.1', 0);
  return { server, port, held };
}

/** One request on a connection, as a promise of its (last) value. */
export function call(connection: PeerConnection, pattern: string, data: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const observer: ReplyObserver = { next: resolve, error: reject, complete: () => resolve(undefined) };
    connection.request(pattern, data, undefined, observer);
  });
}
