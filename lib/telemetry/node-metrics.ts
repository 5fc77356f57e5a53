import type {
  BatchObservableCallback,
  Meter,
  Observable,
  ObservableCounter,
  ObservableUpDownCounter,
} from '@opentelemetry/api';
import type { KableNode } from '../node/kable-node.js';
import { ATTR } from './conventions.js';

type Stats = Record<string, number>;

interface Observed {
  /** Clients and servers sharing the node: it is reported until the last of them stops. */
  users: number;
  /** Counters of clients' connection pools (bytes), beside the node's own stats. */
  extras: Set<() => Stats>;
}

interface Observables {
  peers: ObservableUpDownCounter;
  evictions: ObservableCounter;
  adverts: ObservableCounter;
  datagrams: ObservableCounter;
  dropped: ObservableCounter;
  io: ObservableCounter;
  rejected: ObservableCounter;
  refusals: ObservableCounter;
  unresponsive: ObservableUpDownCounter;
  lapses: ObservableCounter;
  excluded: ObservableUpDownCounter;
  exclusions: ObservableCounter;
}

/**
 * Cluster-level metrics, read when the SDK collects: peers by state, evictions, discovery traffic and
 * drops, data-plane bytes. They come from `node.peers()` and `node.stats()`, so the core needs no
 * OpenTelemetry code and costs nothing between collections.
 */
export class NodeMetrics {
  private readonly nodes = new Map<KableNode, Observed>();
  private meter: Meter | undefined;
  private observables: Observables | undefined;
  private readonly collect: BatchObservableCallback = (result) => {
    const o = this.observables!;
    for (const [node, observed] of this.nodes) {
      const self = { [ATTR.NODE_ID]: node.id, [ATTR.NODE_IID]: node.iid };
      const byState = new Map<string, number>();
      for (const peer of node.peers()) {
        const key = `${peer.id}\u0000${peer.state}`;
        byState.set(key, (byState.get(key) ?? 0) + 1);
      }
      for (const [key, count] of byState) {
        const [service, state] = key.split('\u0000');
        result.observe(o.peers, count, { ...self, [ATTR.PEER_SERVICE]: service, [ATTR.PEER_STATE]: state });
      }
      const stats = node.stats();
      result.observe(o.evictions, stats.evictions ?? 0, self);
      result.observe(o.adverts, stats.advertsSent ?? 0, { ...self, [ATTR.NETWORK_IO_DIRECTION]: 'transmit' });
      result.observe(o.adverts, stats.advertsReceived ?? 0, {
        ...self,
        [ATTR.NETWORK_IO_DIRECTION]: 'receive',
      });
      // UDP counts datagrams, Redis messages: both are what discovery sent and received.
      const sent = stats.datagramsSent ?? stats.published;
      const received = stats.datagramsReceived ?? stats.received;
      if (sent !== undefined)
        result.observe(o.datagrams, sent, { ...self, [ATTR.NETWORK_IO_DIRECTION]: 'transmit' });
      if (received !== undefined)
        result.observe(o.datagrams, received, { ...self, [ATTR.NETWORK_IO_DIRECTION]: 'receive' });
      for (const [key, value] of Object.entries(stats)) {
        if (key.startsWith('dropped.')) {
          result.observe(o.dropped, value, { ...self, [ATTR.REASON]: key.slice('dropped.'.length) });
        } else if (key.startsWith('dataPlane.dropped.')) {
          result.observe(o.rejected, value, {
            ...self,
            [ATTR.REASON]: key.slice('dataPlane.dropped.'.length),
          });
        }
      }
      // From this node's clients' point of view: peers skipped because they do not answer PINGs.
      if (stats['client.unresponsivePeers'] !== undefined) {
        result.observe(o.unresponsive, stats['client.unresponsivePeers'], self);
        result.observe(o.lapses, stats['client.unresponsiveLapses'] ?? 0, self);
      }
      // Replicas this node's clients send only probes to: far slower than their service's others
      // ('latency') or ejected after consecutive failures ('failures'); see replica-health.ts.
      if (stats['client.latencyOutliers'] !== undefined) {
        for (const [reason, now, total] of [
          ['latency', 'client.latencyOutliers', 'client.latencyOutlierEvents'],
          ['failures', 'client.ejectedReplicas', 'client.ejections'],
        ] as const) {
          result.observe(o.excluded, stats[now] ?? 0, { ...self, [ATTR.REASON]: reason });
          result.observe(o.exclusions, stats[total] ?? 0, { ...self, [ATTR.REASON]: reason });
        }
      }
      if (stats['dataPlane.refusedRequests'] !== undefined)
        result.observe(o.refusals, stats['dataPlane.refusedRequests'], self);
      let bytesIn = stats['dataPlane.bytesIn'] ?? 0;
      let bytesOut = stats['dataPlane.bytesOut'] ?? 0;
      for (const extra of observed.extras) {
        const pool = extra();
        bytesIn += pool.bytesIn ?? 0;
        bytesOut += pool.bytesOut ?? 0;
      }
      result.observe(o.io, bytesIn, { ...self, [ATTR.NETWORK_IO_DIRECTION]: 'receive' });
      result.observe(o.io, bytesOut, { ...self, [ATTR.NETWORK_IO_DIRECTION]: 'transmit' });
    }
  };

  /** Creates the observable instruments on a (new) meter; the previous meter stops being called. */
  bind(meter: Meter): void {
    if (this.meter !== undefined && this.observables !== undefined) {
      this.meter.removeBatchObservableCallback(this.collect, Object.values(this.observables) as Observable[]);
    }
    this.meter = meter;
    this.observables = {
      peers: meter.createObservableUpDownCounter('kable.peer.count', {
        unit: '{node}',
        description: 'Other nodes this node knows, by service and state (only RUNNING ones get traffic).',
      }),
      evictions: meter.createObservableCounter('kable.peer.evictions', {
        unit: '{node}',
        description: 'Peers removed because their adverts stopped (crashed or unreachable).',
      }),
      adverts: meter.createObservableCounter('kable.discovery.adverts', {
        unit: '{advert}',
        description: 'Discovery adverts sent and accepted.',
      }),
      datagrams: meter.createObservableCounter('kable.discovery.datagrams', {
        unit: '{datagram}',
        description: 'Discovery datagrams (UDP) or messages (Redis) sent and received.',
      }),
      dropped: meter.createObservableCounter('kable.discovery.dropped', {
        unit: '{datagram}',
        description: 'Discovery input dropped, by reason (bad seal, replay, malformed...).',
      }),
      io: meter.createObservableCounter('kable.data_plane.io', {
        unit: 'By',
        description: 'Data-plane bytes received and sent by this node (requests, replies, events).',
      }),
      rejected: meter.createObservableCounter('kable.data_plane.rejected', {
        unit: '{connection}',
        description: 'Data-plane connections closed for sending something malformed, by reason.',
      }),
      refusals: meter.createObservableCounter('kable.server.refusals', {
        unit: '{refusal}',
        description: 'Requests this node refused (not RUNNING, too many in flight).',
      }),
      unresponsive: meter.createObservableUpDownCounter('kable.peer.unresponsive', {
        unit: '{node}',
        description: "Peers this node's clients skip now because they stopped answering data-plane PINGs.",
      }),
      lapses: meter.createObservableCounter('kable.peer.unresponsive_lapses', {
        unit: '{lapse}',
        description: "Times a peer turned unresponsive for one of this node's clients (see liveness).",
      }),
      excluded: meter.createObservableUpDownCounter('kable.peer.excluded', {
        unit: '{node}',
        description:
          "Replicas this node's clients send only probes to now, by reason: latency (outlier) or failures (ejected).",
      }),
      exclusions: meter.createObservableCounter('kable.peer.exclusions', {
        unit: '{exclusion}',
        description:
          "Times a replica became a latency outlier (latency) or was ejected (failures) for one of this node's clients.",
      }),
    };
    meter.addBatchObservableCallback(this.collect, Object.values(this.observables) as Observable[]);
  }

  observe(node: KableNode, extra?: () => Stats): () => void {
    let observed = this.nodes.get(node);
    if (observed === undefined) {
      observed = { users: 0, extras: new Set() };
      this.nodes.set(node, observed);
    }
    observed.users++;
    if (extra !== undefined) observed.extras.add(extra);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (extra !== undefined) observed.extras.delete(extra);
      if (--observed.users === 0) this.nodes.delete(node);
    };
  }
}
