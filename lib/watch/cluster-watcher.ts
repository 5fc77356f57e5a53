import { EventEmitter } from 'node:events';
import { createDiscoveryTransport } from '../discovery/create-transport.js';
import type { Advert } from '../node/advert.js';
import type { DiscoveryTransport } from '../node/discovery-transport.js';
import type { KableWarning } from '../node/errors.js';
import { PROTOCOL_VERSION, type ProtocolVersion } from '../node/protocol-version.js';
import { DEFAULTS, type KableOptions } from '../node/options.js';

export interface WatchedNode {
  id: string;
  iid: string;
  state: Advert['state'];
  reason?: string;
  host: string;
  port: number;
  hostname: string;
  pid: number;
  since: number;
  lastSeen: number;
  meta?: Record<string, unknown>;
  /** The data-plane protocol version it speaks (the current one when its advert states none). */
  protocol?: ProtocolVersion;
}

export type WatchOptions = Pick<KableOptions, 'namespace' | 'key' | 'keys' | 'discovery'>;

/**
 * Listens to a cluster's adverts without joining it (it never sends), and keeps the table of nodes:
 * what `kable watch` and the sample's console show.
 */
export class ClusterWatcher extends EventEmitter<{ change: []; warning: [KableWarning] }> {
  private readonly table = new Map<string, WatchedNode & { seq: number }>();
  private readonly transport: DiscoveryTransport;
  private readonly nodeTimeout: number;
  private sweep: NodeJS.Timeout | undefined;

  constructor(options: WatchOptions = {}) {
    super();
    this.transport = createDiscoveryTransport({
      discovery: options.discovery,
      namespace: options.namespace ?? DEFAULTS.namespace,
      key: options.key,
      keys: options.keys,
      listenOnly: true,
    });
    const interval = options.discovery?.advertiseInterval ?? DEFAULTS.advertiseInterval;
    this.nodeTimeout = options.discovery?.nodeTimeout ?? Math.round(interval * DEFAULTS.nodeTimeoutFactor);
  }

  async start(): Promise<void> {
    await this.transport.start({
      advert: (advert) => this.receive(advert),
      warning: (warning) => {
        if (this.listenerCount('warning') > 0) this.emit('warning', warning);
      },
    });
    this.sweep = setInterval(() => this.evict(), Math.max(50, Math.floor(this.nodeTimeout / 4)));
    this.sweep.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweep);
    await this.transport.stop();
  }

  /** Known nodes, by service id then instance id. */
  nodes(): WatchedNode[] {
    return [...this.table.values()]
      .map(({ seq: _seq, ...node }) => node)
      .sort((a, b) => (a.id === b.id ? (a.iid < b.iid ? -1 : 1) : a.id < b.id ? -1 : 1));
  }

  stats(): Record<string, number> {
    return { nodes: this.table.size, ...this.transport.stats() };
  }

  private receive(advert: Advert): void {
    const known = this.table.get(advert.iid);
    if (known !== undefined && advert.seq <= known.seq) return;
    if (advert.event === 'unregister') {
      if (this.table.delete(advert.iid)) this.emit('change');
      return;
    }
    const node = {
      id: advert.id,
      iid: advert.iid,
      state: advert.state,
      host: advert.host,
      port: advert.port,
      hostname: advert.hostname,
      pid: advert.pid,
      since: advert.since,
      lastSeen: Date.now(),
      seq: advert.seq,
      protocol: advert.protocol ?? PROTOCOL_VERSION,
      ...(advert.reason === undefined ? {} : { reason: advert.reason }),
      ...(advert.meta === undefined ? {} : { meta: advert.meta }),
    };
    const changed = known === undefined || known.state !== node.state || known.reason !== node.reason;
    this.table.set(advert.iid, node);
    if (changed) this.emit('change');
  }

  private evict(): void {
    const now = Date.now();
    let changed = false;
    for (const [iid, node] of this.table) {
      if (now - node.lastSeen > this.nodeTimeout) {
        this.table.delete(iid);
        changed = true;
      }
    }
    if (changed) this.emit('change');
  }
}
