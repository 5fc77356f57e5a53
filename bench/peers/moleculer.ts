// Moleculer's TCP transporter as a peer row: its own gossip discovery and round-robin balancing, no
// message broker. A static peer list replaces UDP discovery, and every address it binds, advertises or
// dials is 127.0.0.1, so nothing leaves loopback. Default JSON serializer (its MessagePack serializers
// need an extra package); logger, metrics and tracing off. Moleculer 0.15 declares Node >= 22 but runs on
// Node 20.20 (npm only warns).
import { ServiceBroker, Transporters } from 'moleculer';
import net from 'node:net';

const SERVER_ID = 'bench-math';

type Call = () => Promise<unknown>;

/** Moleculer's TCP reader listens on every interface and has no host option: this one binds loopback. */
class LoopbackTcpTransporter extends Transporters.TCP {
  override startTcpServer(): Promise<void> {
    const listen = net.Server.prototype.listen;
    // The reader calls listen() synchronously inside startTcpServer, so the patch covers only that call.
    net.Server.prototype.listen = function (this: net.Server, options: net.ListenOptions, ...rest: never[]) {
      return listen.call(this, { ...options, host: '127.0.0.1' }, ...rest);
    } as typeof listen;
    try {
      return super.startTcpServer();
    } finally {
      net.Server.prototype.listen = listen;
    }
  }
}

function loopbackBroker(nodeID: string, urls?: string): [ServiceBroker, LoopbackTcpTransporter] {
  const transporter = new LoopbackTcpTransporter({ udpDiscovery: false, urls, useHostname: false });
  const broker = new ServiceBroker({
    nodeID,
    logger: false,
    metrics: false,
    tracing: false,
    serializer: 'JSON',
    // A lost reply fails the run instead of hanging it (Moleculer's default is no timeout).
    requestTimeout: 10_000,
    transporter,
  });
  // The node advertises its own addresses in INFO packets, by default the machine's LAN addresses.
  const local = (
    broker.registry as unknown as { nodes: { localNode: { ipList: string[]; hostname: string } } }
  ).nodes.localNode;
  local.ipList = ['127.0.0.1'];
  local.hostname = '127.0.0.1';
  return [broker, transporter];
}

/** Starts a node with a `math` service; resolves with its TCP port. */
export async function serveMoleculer(): Promise<number> {
  const [broker, transporter] = loopbackBroker(SERVER_ID);
  broker.createService({
    name: 'math',
    actions: {
      sum(ctx) {
        let total = 0;
        for (const n of ctx.params as number[]) total += n;
        return total;
      },
    },
  });
  await broker.start();
  return transporter.opts.port!;
}

/** A client node that knows the server from its static peer list and calls `math.sum`. */
export async function moleculerCaller(port: number, payload: number[]): Promise<[Call, () => Promise<void>]> {
  const [broker] = loopbackBroker('bench-client', `127.0.0.1:${port}/${SERVER_ID}`);
  await broker.start();
  await broker.waitForServices('math', 10_000);
  return [() => broker.call('math.sum', payload), () => broker.stop()];
}
