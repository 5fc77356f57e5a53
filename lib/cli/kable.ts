#!/usr/bin/env node
// kable watch: shows a cluster's nodes live, read-only (it listens to adverts and never sends).
import { parseArgs } from 'node:util';
import type { DiscoveryOptions } from '../node/options.js';
import { ClusterWatcher } from '../watch/cluster-watcher.js';
import { renderTable } from '../watch/render-table.js';

const USAGE = `Usage: kable watch [options]

  --mode <broadcast|multicast|unicast|redis>   discovery mode (default broadcast)
  --url <redis://...>   redis mode: the server (default redis://127.0.0.1:6379)
  --address <ip>        broadcast address or multicast group
  --port <n>            discovery port (default 5000)
  --interface <ip>      local interface (multicast, bind)
  --namespace <name>    cluster namespace (default "default")
  --key <base64>        the cluster key, for sealed clusters
  --interval <ms>       the cluster's advertiseInterval (default 3000), for eviction
  --json                print one snapshot as JSON after --wait ms, then exit
  --wait <ms>           how long --json listens first (default: 1.5 × interval)`;

function fail(message: string): void {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exitCode = 2;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      mode: { type: 'string' },
      address: { type: 'string' },
      url: { type: 'string' },
      port: { type: 'string' },
      interface: { type: 'string' },
      namespace: { type: 'string' },
      key: { type: 'string' },
      interval: { type: 'string' },
      json: { type: 'boolean' },
      wait: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (positionals[0] !== 'watch') return fail(`Unknown command "${positionals[0] ?? ''}".`);
  const interval = Number(values.interval ?? 3000);
  const discovery: DiscoveryOptions = { advertiseInterval: interval };
  if (values.mode !== undefined) discovery.mode = values.mode as DiscoveryOptions['mode'];
  if (values.address !== undefined) discovery.address = values.address;
  if (values.url !== undefined) discovery.url = values.url;
  if (values.port !== undefined) discovery.port = Number(values.port);
  if (values.interface !== undefined) discovery.interface = values.interface;
  const watcher = new ClusterWatcher({ discovery, namespace: values.namespace, key: values.key });
  await watcher.start();
  if (values.json) {
    const wait = Number(values.wait ?? Math.round(interval * 1.5));
    await new Promise((resolve) => setTimeout(resolve, wait));
    // One line, so scripts can read it as JSON Lines.
    process.stdout.write(`${JSON.stringify({ nodes: watcher.nodes(), stats: watcher.stats() })}\n`);
    await watcher.stop();
    return;
  }
  // A frozen node keeps its last advertised state until evicted: flag one silent past 1.25 intervals.
  const silentAfter = Math.round(interval * 1.25);
  const draw = () => process.stdout.write(`\x1b[2J\x1b[H${renderTable(watcher.nodes(), { silentAfter })}\n`);
  watcher.on('change', draw);
  setInterval(draw, 1000);
  draw();
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
