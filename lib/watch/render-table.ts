import type { WatchedNode } from './cluster-watcher.js';

export interface TableExtras {
  /** Per instance id: requests served and in flight, when the caller knows them. */
  served?: Map<string, number>;
  inFlight?: Map<string, number>;
  names?: Map<string, string>;
}

/** The cluster as a fixed-width text table, one node per line. */
export function renderTable(nodes: WatchedNode[], extras: TableExtras = {}): string {
  const header = ['node', 'instance', 'state', 'address', 'served', 'in flight'];
  const rows = nodes.map((node) => [
    extras.names?.get(node.iid) ?? node.id,
    node.iid.slice(0, 8),
    node.reason ? `${node.state} (${node.reason})` : node.state,
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
