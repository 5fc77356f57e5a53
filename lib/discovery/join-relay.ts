import type { UdpTarget } from './unicast-peers.js';

/** Most joiners remembered for the relay's rate limit; the least recently relayed is forgotten first. */
const MAX_REMEMBERED = 1024;

/** `host:port` as gossip and relays carry it; undefined unless an IPv4 address and a valid port. */
export function parseAddress(value: unknown): UdpTarget | undefined {
  const match = typeof value === 'string' ? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(value) : null;
  if (match === null) return undefined;
  const port = Number(match[2]);
  return port >= 1 && port <= 65535 ? { host: match[1], port } : undefined;
}

/**
 * unicast: a joining node knows only its seeds, so a seed that hears a join request passes it on, once,
 * to every address it knows (with the joiner's address), and each of them answers the joiner directly.
 * The newcomer then hears from every node after one and a half round trips. A relayed request is never
 * relayed again, and one joiner is relayed at most once per `gap` ms, so a node restarting in a loop
 * cannot make a seed flood the cluster.
 */
export class JoinRelay {
  private readonly lastRelayed = new Map<string, number>();
  limited = 0;

  constructor(private readonly gap: number) {}

  /** Whether a join request from `joiner` should be passed on now. */
  shouldRelay(joiner: string, now = Date.now()): boolean {
    const last = this.lastRelayed.get(joiner);
    if (last !== undefined && now - last < this.gap) {
      this.limited++;
      return false;
    }
    this.lastRelayed.delete(joiner);
    this.lastRelayed.set(joiner, now);
    if (this.lastRelayed.size > MAX_REMEMBERED) {
      const oldest = this.lastRelayed.keys().next().value;
      if (oldest !== undefined) this.lastRelayed.delete(oldest);
    }
    return true;
  }
}
