import { RateBudget, RateBudgets } from '../node/rate-budget.js';
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

/** Relays of joins from one address (whatever its ports) at once; then four a second. */
export const JOIN_RELAY_BURST_PER_ADDRESS = 4;
/**
 * Join relays one seed passes on a second, joiners of all addresses together (a burst of as many): each
 * relay costs a datagram per known node, and each of them an answer. Over it a joiner is not relayed: it
 * still has the seed's own answer, asks again (JOIN_RETRIES_MS), and meets the others by their adverts.
 */
export const JOIN_RELAYS_PER_SECOND = 10;

/**
 * unicast: a joining node knows only its seeds, so a seed that hears a join request passes it on, once,
 * to every address it knows (with the joiner's address), and each of them answers the joiner directly.
 * The newcomer then hears from every node after one and a half round trips. A relayed request is never
 * relayed again; one joiner (address and port) is relayed at most once per `gap` ms, one address
 * (whatever its ports: a forged request picks any) at most JOIN_RELAY_BURST_PER_ADDRESS times at once and
 * then four times a second, and all joiners together at most JOIN_RELAYS_PER_SECOND times a second. So a
 * node restarting in a loop, or requests forged with a spoofed source, cannot make a seed flood the
 * cluster.
 */
export class JoinRelay {
  private readonly lastRelayed = new Map<string, number>();
  private readonly perAddress = new RateBudgets(4, JOIN_RELAY_BURST_PER_ADDRESS, MAX_REMEMBERED);
  private readonly overall = new RateBudget(JOIN_RELAYS_PER_SECOND, JOIN_RELAYS_PER_SECOND);
  limited = 0;

  constructor(private readonly gap: number) {}

  /** Whether a join request from `joiner` should be passed on now. */
  shouldRelay(joiner: UdpTarget, now = performance.now()): boolean {
    const key = `${joiner.host}:${joiner.port}`;
    const last = this.lastRelayed.get(key);
    if (
      (last !== undefined && now - last < this.gap) ||
      this.perAddress.of(joiner.host, now)?.take(now) !== true ||
      !this.overall.take(now)
    ) {
      this.limited++;
      return false;
    }
    this.lastRelayed.delete(key);
    this.lastRelayed.set(key, now);
    if (this.lastRelayed.size > MAX_REMEMBERED) {
      const oldest = this.lastRelayed.keys().next().value;
      if (oldest !== undefined) this.lastRelayed.delete(oldest);
    }
    return true;
  }
}
