import { brand } from '../node/brand.js';

/**
 * Packet metadata field read as a request's or event's affinity key (Nest 12): a dispatch hook set with
 * `client.setOnDispatchHook((packet) => { packet.metadata = { ...packet.metadata, [KABLE_AFFINITY_METADATA]: key }; })`
 * sends the packet to the key's replica. A string or a number; it travels to the server with the rest
 * of the metadata.
 */
export const KABLE_AFFINITY_METADATA = 'kableAffinityKey';

/** Options of one request or event sent as a {@link KableRecord}. */
export interface KableRecordOptions {
  /**
   * The affinity key: every request and event with the same key goes to the same replica of a
   * service, on every caller, while that replica is RUNNING, answers and is within the load bound
   * (see docs/affinity.md). A number is the same key as its decimal text. Undefined: no key.
   */
  affinityKey?: string | number;
}

/**
 * Data with per-call options, as Nest's RmqRecord and NatsRecord: `client.send('orders.get',
 * new KableRecord(order, { affinityKey: order.customerId }))`. The client unwraps it: the handler
 * receives `data` only. Its key comes before a dispatch hook's and the `affinity` option's.
 */
export class KableRecord<TData = any> {
  static {
    brand(this, 'KableRecord');
  }

  constructor(
    /** What the handler receives. */
    readonly data: TData,
    /** This call's options. */
    readonly options: KableRecordOptions = {},
  ) {}
}
