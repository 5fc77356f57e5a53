import { networkInterfaces } from 'node:os';

/**
 * The address other nodes can reach this one at when the user gives none: the first non-internal
 * IPv4 address (the LAN case kable was made for), else loopback. Tests always pass `host` explicitly.
 */
export function defaultHost(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) {
      if (entry.family === 'IPv4' && !entry.internal) return entry.address;
    }
  }
  return '127.0.0.1';
}
