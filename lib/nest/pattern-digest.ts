import { createHash } from 'node:crypto';

export interface PatternCatalogEntry {
  messages: string[];
  events: string[];
}

/**
 * A short fingerprint of what a node handles. Adverts carry it instead of the list (which could blow
 * the 1,200-byte advert limit); clients fetch the list over the data plane when it changes, once per
 * distinct digest, so a hundred replicas with the same handlers cost one fetch.
 */
export function patternDigest(entry: PatternCatalogEntry): string {
  if (entry.messages.length === 0 && entry.events.length === 0) return '';
  const hash = createHash('sha256');
  for (const pattern of [...entry.messages].sort()) hash.update(`m:${pattern}\n`);
  for (const pattern of [...entry.events].sort()) hash.update(`e:${pattern}\n`);
  return hash.digest('base64url').slice(0, 16);
}
