/** Slots of a new table; it doubles when more than half are taken and halves below an eighth. */
const MIN_CAPACITY = 64;

/**
 * How many requests of each affinity key (its `keyHash`) one caller has in flight, for the load rule
 * in rendezvous.ts (`loadLimit`): a key with some sheds first. A key is in the table only while it has
 * a request in flight, so the table never holds more entries than requests in flight.
 *
 * Every keyed request adds and releases its key, so this is on the hot path: an open-addressed table of
 * 32-bit keys and counts (linear probing, deletion by shifting the next entries back), rather than a
 * Map whose churn leaves deleted entries to rehash away and allocates. A key hash is already mixed
 * (murmur3 finalizer), so its low bits are its slot.
 */
export class KeysInFlight {
  private keys = new Int32Array(MIN_CAPACITY);
  /** Requests in flight per slot; 0 marks an empty slot. */
  private counts = new Int32Array(MIN_CAPACITY);
  private mask = MIN_CAPACITY - 1;
  private entries = 0;

  /** Keys with at least one request in flight. */
  get size(): number {
    return this.entries;
  }

  /** Requests of the key in flight (0 for one with none). */
  of(key: number): number {
    const slot = this.find(key | 0);
    return slot < 0 ? 0 : this.counts[slot];
  }

  /** A request of the key was sent to a replica. */
  add(key: number): void {
    const wanted = key | 0;
    const counts = this.counts;
    let slot = wanted & this.mask;
    while (counts[slot] !== 0) {
      if (this.keys[slot] === wanted) {
        counts[slot]++;
        return;
      }
      slot = (slot + 1) & this.mask;
    }
    if ((this.entries + 1) * 2 > counts.length) {
      this.resize(counts.length * 2);
      slot = this.emptySlot(wanted);
    }
    this.keys[slot] = wanted;
    this.counts[slot] = 1;
    this.entries++;
  }

  /** A request of the key ended (once per `add`): the entry goes at 0. */
  release(key: number): void {
    let slot = this.find(key | 0);
    if (slot < 0) return;
    const counts = this.counts;
    if (counts[slot] > 1) {
      counts[slot]--;
      return;
    }
    // Deleting in linear probing: each following entry whose probe passed through the freed slot moves
    // back into it, so every lookup still finds its key before the first empty slot.
    const keys = this.keys;
    const mask = this.mask;
    let next = slot;
    for (;;) {
      next = (next + 1) & mask;
      if (counts[next] === 0) break;
      const home = keys[next] & mask;
      // Whether `home` lies cyclically in (slot, next]: then the entry stays where it is.
      const stays = slot <= next ? slot < home && home <= next : slot < home || home <= next;
      if (stays) continue;
      keys[slot] = keys[next];
      counts[slot] = counts[next];
      slot = next;
    }
    counts[slot] = 0;
    this.entries--;
    if (counts.length > MIN_CAPACITY && this.entries * 8 < counts.length) this.resize(counts.length / 2);
  }

  /** The key's slot, or -1. */
  private find(key: number): number {
    const counts = this.counts;
    let slot = key & this.mask;
    while (counts[slot] !== 0) {
      if (this.keys[slot] === key) return slot;
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  /** The first empty slot on the key's probe path (the key is not in the table). */
  private emptySlot(key: number): number {
    let slot = key & this.mask;
    while (this.counts[slot] !== 0) slot = (slot + 1) & this.mask;
    return slot;
  }

  private resize(capacity: number): void {
    const keys = this.keys;
    const counts = this.counts;
    this.keys = new Int32Array(capacity);
    this.counts = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < counts.length; i++) {
      if (counts[i] === 0) continue;
      const slot = this.emptySlot(keys[i]);
      this.keys[slot] = keys[i];
      this.counts[slot] = counts[i];
    }
  }
}
