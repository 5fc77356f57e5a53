import { EventEmitter } from 'node:events';
import type { PeerRecord } from '../node/peer-record.js';
import type { PatternCatalogEntry } from './pattern-digest.js';

export type PatternKind = 'messages' | 'events';

interface KnownCatalog {
  messages: Set<string>;
  events: Set<string>;
}

/** Fetches one node's full pattern list (over the data plane: DESCRIBE). */
export type DescribePeer = (peer: PeerRecord) => Promise<PatternCatalogEntry>;

export interface PatternCatalogOptions {
  /** Most distinct digests remembered (default 1024); the oldest is forgotten first. */
  maxEntries?: number;
  /** Milliseconds before a failed fetch of a digest may be tried again (default 1000). */
  retryAfter?: number;
}

/**
 * What each pattern digest stands for. Adverts carry only the digest; the list behind it is fetched
 * once per distinct digest from any node that advertises it, so a hundred identical replicas cost
 * one DESCRIBE. Emits 'changed' when a digest becomes known or may be fetched again, so routers recompute.
 */
export class PatternCatalog extends EventEmitter<{ changed: [digest: string] }> {
  /** Changes whenever a digest is learned: lets routers cache their views. */
  version = 0;
  private readonly known = new Map<string, KnownCatalog>();
  private readonly fetching = new Set<string>();
  private readonly failedAt = new Map<string, number>();
  private readonly maxEntries: number;
  private readonly retryAfter: number;

  constructor(
    private readonly describe: DescribePeer,
    options: PatternCatalogOptions = {},
  ) {
    super();
    this.maxEntries = options.maxEntries ?? 1024;
    this.retryAfter = options.retryAfter ?? 1000;
  }

  /** True or false when the digest is known; undefined (and a fetch started) when it is not yet. */
  handles(peer: PeerRecord, pattern: string, kind: PatternKind): boolean | undefined {
    if (peer.patterns === '') return false;
    const catalog = this.known.get(peer.patterns);
    if (catalog !== undefined) return catalog[kind].has(pattern);
    this.fetch(peer);
    return undefined;
  }

  /** Whether the digest's list is known (a peer with an unknown digest may still serve the pattern). */
  isKnown(digest: string): boolean {
    return digest === '' || this.known.has(digest);
  }

  private fetch(peer: PeerRecord): void {
    const digest = peer.patterns;
    if (this.fetching.has(digest)) return;
    const failed = this.failedAt.get(digest);
    if (failed !== undefined && Date.now() - failed < this.retryAfter) return;
    this.fetching.add(digest);
    this.describe(peer).then(
      (entry) => {
        this.fetching.delete(digest);
        this.failedAt.delete(digest);
        this.remember(digest, entry);
      },
      () => {
        this.fetching.delete(digest);
        this.failedAt.set(digest, Date.now());
        if (this.failedAt.size > this.maxEntries) this.failedAt.clear();
        // Another node with the same digest, or the next advert, triggers the next try.
        const retry = setTimeout(() => this.emit('changed', digest), this.retryAfter);
        retry.unref();
      },
    );
  }

  private remember(digest: string, entry: PatternCatalogEntry): void {
    if (this.known.size >= this.maxEntries) {
      const oldest = this.known.keys().next().value;
      if (oldest !== undefined) this.known.delete(oldest);
    }
    this.known.set(digest, { messages: new Set(entry.messages), events: new Set(entry.events) });
    this.version++;
    this.emit('changed', digest);
  }
}
