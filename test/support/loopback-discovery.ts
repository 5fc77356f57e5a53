import { randomInt } from 'node:crypto';

/**
 * Discovery options that keep a test's cluster on loopback and apart from every other test running at
 * the same time: multicast through 127.0.0.1 on a group and port of its own, short intervals.
 */
export function loopbackDiscovery(advertiseInterval = 100): {
  mode: 'multicast';
  address: string;
  port: number;
  interface: string;
  advertiseInterval: number;
} {
  return {
    mode: 'multicast',
    address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`,
    port: randomInt(20_000, 60_000),
    interface: '127.0.0.1',
    advertiseInterval,
  };
}
