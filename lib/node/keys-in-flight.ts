/**
 * How many requests of each affinity key (its `keyHash`) one caller has in flight, for the load rule
 * in rendezvous.ts (`loadLimit`): a key with some in flight sheds first. A key is in the map only while
 * it has a request in flight, so the map never holds more entries than requests in flight.
 */
export class KeysInFlight {
  private readonly counts = new Map<number, number>();

  /** Keys with at least one request in flight. */
  get size(): number {
    return this.counts.size;
  }

  /** Requests of the key in flight (0 for one with none). */
  of(key: number): number {
    return this.counts.get(key) ?? 0;
  }

  /** A request of the key was sent to a replica. */
  add(key: number): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** A request of the key ended (once per `add`): the entry goes at 0. */
  release(key: number): void {
    const count = this.counts.get(key);
    if (count === undefined) return;
    if (count <= 1) this.counts.delete(key);
    else this.counts.set(key, count - 1);
  }
}
