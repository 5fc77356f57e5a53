import { formatVersion, isCompatible } from '../node/protocol-version.js';
import type { WatchedNode } from './cluster-watcher.js';

export interface TableExtras {
  /** Per instance id: requests served and in flight, when the caller knows them. */
  served?: Map<string, number>;
  inFlight?: Map<string, number>;
  names?: Map<string, string>;
  /** Instance ids a caller skips because they stopped answering its PINGs (a client's unresponsiveNodes()). */
  unresponsive?: Set<string>;
  /**
   * Replicas a caller sends only probes to, by instance id, with the reason (from a client's
   * excludedReplicas(): 'latency', an outlier, or 'failures', ejected).
   */
  excluded?: Map<string, 'latency' | 'failures'>;
  /** Milliseconds without an advert after which a node is marked silent (a frozen node still says RUNNING). */
  silentAfter?: number;
}

/** The cluster as a fixed-width text table, one node per line. */
export function renderTable(nodes: WatchedNode[], extras: TableExtras = {}): string {
  const header = ['node', 'instance', 'state', 'address', 'served', 'in flight'];
  const now = Date.now();
  const state = (node: WatchedNode): string => {
    let text = node.reason ? `${node.state} (${node.reason})` : node.state;
    if (extras.unresponsive?.has(node.iid)) text += ', unresponsive';
    // Callers of this version never send it requests (see protocol-version.ts).
    if (node.protocol !== undefined && !isCompatible(node.protocol))
      text += `, incompatible ${formatVersion(node.protocol)}`;
    const excluded = extras.excluded?.get(node.iid);
    if (excluded !== undefined) text += excluded === 'latency' ? ', slow: probes only' : ', ejected: failing';
    const silent = now - node.lastSeen;
    if (extras.silentAfter !== undefined && silent > extras.silentAfter)
      text += `, silent ${(silent / 1000).toFixed(1)} s`;
    return text;
  };
  const rows = nodes.map((node) => [
    extras.names?.get(node.iid) ?? node.id,
    node.iid.slice(0, 8),
    state(node),
    `${node.host}:${node.port}`,
    extras.served?.has(node.iid) ? String(extras.served.get(node.iid)) : '-',
    extras.inFlight?.has(node.iid) ? String(extras.inFlight.get(node.iid)) : '-',
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  const format = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [format(header), format(widths.map((w) => '-'.repeat(w))), ...rows.map(format)].join('\n');
}
