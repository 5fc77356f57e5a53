import { randomBytes } from 'node:crypto';
import type { Advert } from '../node/advert.js';
import type { DiscoveryHandlers, DiscoveryTransport } from '../node/discovery-transport.js';
import { KableError, KableOptionsError } from '../node/errors.js';
import { WarningLimiter } from '../node/warning-limiter.js';
import {
  MAX_DATAGRAM,
  advertFromArray,
  assertAdvertFits,
  advertToArray,
  decodeValue,
  encodeValue,
} from './advert-codec.js';
import { AdvertSeal } from './advert-seal.js';
import { ReplayGuard } from './replay-guard.js';

export interface RedisTransportOptions {
  url: string;
  namespace: string;
  keys: Buffer[];
  nodeTimeout: number;
}

/** The part of an ioredis client this backend uses (ioredis is an optional peer, loaded at start). */
interface RedisClient {
  on(event: string, listener: (...args: any[]) => void): unknown;
  publish(channel: string, message: Buffer): Promise<number>;
  set(key: string, value: Buffer, mode: 'PX', ms: number): Promise<unknown>;
  del(key: string): Promise<number>;
  scan(
    cursor: string,
    match: 'MATCH',
    pattern: string,
    count: 'COUNT',
    n: number,
  ): Promise<[string, string[]]>;
  mgetBuffer(...keys: string[]): Promise<Array<Buffer | null>>;
  subscribe(channel: string): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(): void;
  status: string;
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisClient;

async function loadRedis(): Promise<RedisConstructor> {
  try {
    const module = (await import('ioredis')) as unknown as {
      Redis?: RedisConstructor;
      default?: RedisConstructor;
    };
    const Redis = module.Redis ?? module.default;
    if (Redis === undefined) throw new Error('no Redis export');
    return Redis;
  } catch (error) {
    throw new KableError(
      'KABLE_REDIS_MISSING',
      'discovery.mode "redis" needs the ioredis package (an optional peer dependency): npm install ioredis',
      { cause: error },
    );
  }
}

/**
 * Adverts through Redis, for networks without broadcast or multicast: each advert is published on a
 * channel per namespace and also stored under a key of its own that expires after nodeTimeout, so a node
 * that starts later reads the live ones at once. Adverts are sealed exactly as over UDP. When Redis goes
 * away the node keeps its view (it evicts nobody for the outage alone); ioredis reconnects and
 * re-subscribes, and the node announces itself again.
 */
export class RedisTransport implements DiscoveryTransport {
  /** start() reads every live node's advert (the snapshot): a joining node need not ask. */
  readonly knowsCluster = true;
  private publisher: RedisClient | undefined;
  private subscriber: RedisClient | undefined;
  private handlers: DiscoveryHandlers | undefined;
  private readonly seal: AdvertSeal;
  private readonly replay = new ReplayGuard();
  private readonly warnings: WarningLimiter;
  private boot = randomBytes(8).toString('hex');
  private seq = 0;
  private reachable = true;
  private readonly channel: string;
  private readonly prefix: string;
  private readonly counters = {
    published: 0,
    received: 0,
    snapshotAdverts: 0,
    redisErrors: 0,
    reconnects: 0,
  };

  constructor(private readonly options: RedisTransportOptions) {
    if (!/^rediss?:\/\//.test(options.url)) {
      throw new KableOptionsError(`discovery.url must be a redis:// or rediss:// URL; got "${options.url}".`);
    }
    this.seal = new AdvertSeal(options.namespace, options.keys);
    this.warnings = new WarningLimiter((warning) => this.handlers?.warning(warning));
    this.channel = `kable:${options.namespace}:adverts`;
    this.prefix = `kable:${options.namespace}:node:`;
  }

  validate(advert: Advert): void {
    assertAdvertFits(this.encode(advert));
  }

  async start(handlers: DiscoveryHandlers): Promise<void> {
    this.handlers = handlers;
    this.boot = randomBytes(8).toString('hex');
    const Redis = await loadRedis();
    // Never give up reconnecting; commands issued while disconnected fail fast instead of queueing
    // forever (an advert is worth nothing once stale).
    const settings = {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: (times: number) => Math.min(times * 100, 2000),
    };
    const publisher = new Redis(this.options.url, settings);
    const subscriber = new Redis(this.options.url, { ...settings, enableOfflineQueue: true });
    for (const client of [publisher, subscriber]) {
      client.on('error', (error: Error) => {
        // Once stopping, a closed connection is expected, not news.
        if (this.handlers === undefined) return;
        this.counters.redisErrors++;
        this.warnings.count('redisError', `Redis: ${error.message}`);
      });
    }
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.receive(message, false));
    try {
      await Promise.all([
        (publisher as unknown as { connect(): Promise<void> }).connect(),
        (subscriber as unknown as { connect(): Promise<void> }).connect(),
      ]);
      await subscriber.subscribe(this.channel);
    } catch (error) {
      publisher.disconnect();
      subscriber.disconnect();
      throw new KableError(
        'KABLE_DISCOVERY_BIND',
        `Discovery could not reach Redis at ${this.options.url}: ${(error as Error).message}.`,
        { cause: error },
      );
    }
    this.publisher = publisher;
    this.subscriber = subscriber;
    publisher.on('close', () => this.setReachable(false));
    publisher.on('ready', () => {
      this.counters.reconnects++;
      this.setReachable(true);
    });
    await this.loadSnapshot();
  }

  send(advert: Advert): void {
    const publisher = this.publisher;
    if (publisher === undefined || publisher.status !== 'ready') return;
    const datagram = this.encode(advert);
    this.counters.published++;
    const key = this.prefix + advert.iid;
    const stored =
      advert.event === 'unregister'
        ? publisher.del(key)
        : publisher.set(key, datagram, 'PX', this.options.nodeTimeout);
    Promise.all([publisher.publish(this.channel, datagram), stored]).catch((error: Error) =>
      this.warnings.count('redisError', `Redis: could not publish an advert: ${error.message}`),
    );
  }

  async flush(advert: Advert): Promise<void> {
    const publisher = this.publisher;
    if (publisher === undefined || publisher.status !== 'ready') return;
    const datagram = this.encode(advert);
    await Promise.all([
      publisher.publish(this.channel, datagram),
      advert.event === 'unregister' ? publisher.del(this.prefix + advert.iid) : Promise.resolve(0),
    ]).catch(() => undefined);
  }

  async stop(): Promise<void> {
    const clients = [this.publisher, this.subscriber];
    this.publisher = undefined;
    this.subscriber = undefined;
    this.handlers = undefined;
    await Promise.all(
      clients.map(async (client) => {
        if (client === undefined) return;
        await client.quit().catch(() => client.disconnect());
      }),
    );
  }

  stats(): Record<string, number> {
    const dropped: Record<string, number> = {};
    for (const [kind, count] of Object.entries(this.warnings.counts)) dropped[`dropped.${kind}`] = count;
    return { ...this.counters, ...dropped };
  }

  private setReachable(reachable: boolean): void {
    if (reachable === this.reachable) return;
    this.reachable = reachable;
    this.handlers?.connectivity?.(reachable);
    if (reachable) void this.loadSnapshot();
  }

  /** Reads every live node's last advert, so a node joining late knows the cluster at once. */
  private async loadSnapshot(): Promise<void> {
    const publisher = this.publisher;
    if (publisher === undefined) return;
    try {
      let cursor = '0';
      do {
        const [next, keys] = await publisher.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 200);
        cursor = next;
        if (keys.length === 0) continue;
        for (const value of await publisher.mgetBuffer(...keys)) {
          if (value === null) continue;
          this.counters.snapshotAdverts++;
          this.receive(value, true);
        }
      } while (cursor !== '0');
    } catch (error) {
      this.warnings.count('redisError', `Redis: could not read the snapshot: ${(error as Error).message}`);
    }
  }

  private encode(advert: Advert): Buffer {
    this.seq++;
    return this.seal.seal(encodeValue([this.boot, this.seq, Date.now(), advertToArray(advert)]));
  }

  private receive(message: Buffer, fromSnapshot: boolean): void {
    try {
      this.counters.received++;
      if (message.length > MAX_DATAGRAM)
        return this.warnings.count('oversized', 'Dropped an oversized advert.');
      const payload = this.seal.open(message);
      if (typeof payload === 'string') return this.warnings.count(payload, `Dropped an advert: ${payload}.`);
      const value = decodeValue(payload);
      if (!Array.isArray(value) || value.length !== 4)
        return this.warnings.count('badShape', 'Dropped a malformed advert.');
      const [boot, seq, timestamp, body] = value as unknown[];
      if (typeof boot !== 'string' || !Number.isSafeInteger(seq) || !Number.isSafeInteger(timestamp)) {
        return this.warnings.count('badShape', 'Dropped a malformed advert.');
      }
      if (boot === this.boot) return;
      const advert = advertFromArray(body);
      if (advert === undefined) return this.warnings.count('badShape', 'Dropped a malformed advert.');
      const stale = this.replay.check(boot, seq as number, timestamp as number);
      // A snapshot entry may repeat what the channel already delivered: that is no attack.
      if (stale !== undefined)
        return fromSnapshot ? undefined : this.warnings.count(stale, `Dropped an advert: ${stale}.`);
      this.handlers?.advert(advert, { address: 'redis', port: 0 });
    } catch {
      this.warnings.count('garbage', 'Dropped an advert that is not MessagePack.');
    }
  }
}
