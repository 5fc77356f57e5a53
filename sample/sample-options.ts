import type { DiscoveryOptions } from '../lib/index.js';

/**
 * The sample's cluster: multicast through the loopback interface, so it runs on any machine and sends
 * nothing beyond it. `npm start -- --redis` style switches arrive as KABLE_SAMPLE_DISCOVERY (JSON).
 */
export function sampleDiscovery(): DiscoveryOptions {
  const fromEnv = process.env.KABLE_SAMPLE_DISCOVERY;
  if (fromEnv) return JSON.parse(fromEnv) as DiscoveryOptions;
  return {
    mode: 'multicast',
    address: '239.255.42.7',
    port: 45042,
    interface: '127.0.0.1',
    advertiseInterval: 500,
  };
}

export function sampleNodeOptions() {
  return { host: '127.0.0.1', discovery: sampleDiscovery() };
}
