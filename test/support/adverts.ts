import type { Advert } from '../../lib/node/advert.js';

/** A valid advert of a made-up node on 127.0.0.1, for tests that send adverts by hand. */
export function testAdvert(fields: Partial<Advert> & Pick<Advert, 'iid'>): Advert {
  const now = Date.now();
  return {
    event: 'update',
    id: 'peer',
    replica: true,
    host: '127.0.0.1',
    port: 1,
    hostname: 'test',
    pid: 1,
    index: 1,
    startedAt: now,
    state: 'RUNNING',
    since: now,
    seq: 1,
    patterns: '',
    ...fields,
  };
}
