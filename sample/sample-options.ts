import type { DiscoveryOptions, KableOptions } from '../lib/index.js';

type Environment = Record<string, string | undefined>;

/**
 * The sample's cluster: multicast through the loopback interface, so it runs on any machine and sends
 * nothing beyond it. `npm start -- --redis` style switches arrive as KABLE_SAMPLE_DISCOVERY (JSON).
 */
export function sampleDiscovery(env: Environment = process.env): DiscoveryOptions {
  const fromEnv = env.KABLE_SAMPLE_DISCOVERY;
  if (fromEnv) return JSON.parse(fromEnv) as DiscoveryOptions;
  return {
    mode: 'multicast',
    address: '239.255.42.7',
    port: 45042,
    interface: '127.0.0.1',
    advertiseInterval: 500,
  };
}

/**
 * Node options of a sample service. On one machine every address is loopback; in containers
 * (examples/) the environment says where the node is:
 * - KABLE_SAMPLE_HOST: the data-plane address peers connect to (default 127.0.0.1); `auto` leaves it
 *   to the library (the first non-internal IPv4 address: the container's own).
 * - KABLE_SAMPLE_PORT: the data-plane port of a server (default 0: chosen by the system).
 * - KABLE_SAMPLE_KEY: the cluster key, sealing adverts and securing the data plane (default none).
 */
export function sampleNodeOptions(env: Environment = process.env): KableOptions {
  const host = env.KABLE_SAMPLE_HOST ?? '127.0.0.1';
  return {
    ...(host === 'auto' ? {} : { host }),
    ...(env.KABLE_SAMPLE_PORT ? { port: Number(env.KABLE_SAMPLE_PORT) } : {}),
    ...(env.KABLE_SAMPLE_KEY ? { key: env.KABLE_SAMPLE_KEY } : {}),
    discovery: sampleDiscovery(env),
  };
}

/**
 * A client node's options: a server's, without its data-plane port (a client serves nothing), and on
 * KABLE_SAMPLE_CLIENT_DISCOVERY_PORT when set. In unicast mode two nodes of one process cannot share a
 * discovery port (a unicast datagram reaches one socket only), and the orders service is a server and
 * a client.
 */
export function sampleClientOptions(env: Environment = process.env): KableOptions {
  const { port: _serverPort, discovery, ...rest } = sampleNodeOptions(env);
  const clientPort = env.KABLE_SAMPLE_CLIENT_DISCOVERY_PORT;
  return { ...rest, discovery: clientPort ? { ...discovery, port: Number(clientPort) } : discovery };
}

/** The script and role of one service, as the console (start.ts) and the containers (examples/) run it. */
export function serviceArguments(role: 'math' | 'orders' | 'gateway'): string[] {
  return ['sample/service.ts', role];
}

/**
 * The sample's customers, c-0 to c-14: each /order without one is for the next, in turn. An odd number,
 * so that round robin over two orders replicas would give a customer each replica in turn: what keeps
 * every customer on one replica is the key affinity.
 */
export const SAMPLE_CUSTOMERS = 15;
