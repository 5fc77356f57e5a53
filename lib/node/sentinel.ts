import { KableOptionsError } from './errors.js';
import type { KableNode } from './kable-node.js';
import { milliseconds } from './validate-options.js';

/** Options of `sentinel(id, options)`, besides the node options. */
export interface SentinelOptions {
  /** Answers whether the watched resource (a database, a queue, an API) is usable. Throwing counts as no. */
  probe: () => boolean | Promise<boolean>;
  /** Milliseconds between probes (default 1000). */
  interval?: number;
  /** Milliseconds a probe may take before it counts as a failure (default: the interval). */
  probeTimeout?: number;
}

/**
 * A node whose state mirrors an external resource, as kable's sentinels did: RUNNING while the probe
 * answers yes, STOPPED while it does not. Other nodes `pick()` it or watch its `peer:state` to know
 * whether the resource is there, without each probing it themselves.
 */
export class KableSentinel {
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly interval: number;
  private readonly probeTimeout: number;

  constructor(
    /** The node whose state follows the probe. */
    readonly node: KableNode,
    private readonly options: SentinelOptions,
  ) {
    if (options === null || typeof options !== 'object' || typeof options.probe !== 'function') {
      throw new KableOptionsError(
        'A sentinel needs a `probe` function returning (a promise of) true or false.',
      );
    }
    this.interval = positive('interval', options.interval ?? 1000);
    this.probeTimeout = positive('probeTimeout', options.probeTimeout ?? this.interval);
  }

  /** Joins the cluster as UP, probes at once, then every interval. */
  async start(): Promise<void> {
    await this.node.up(false);
    await this.check();
    this.timer = setInterval(() => void this.check(), this.interval);
    this.timer.unref();
  }

  /** Stops probing and takes the node DOWN. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.node.down();
  }

  private async check(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    let timeout: NodeJS.Timeout | undefined;
    try {
      const healthy = await Promise.race([
        Promise.resolve().then(() => this.options.probe()),
        new Promise<boolean>((resolve) => {
          timeout = setTimeout(() => resolve(false), this.probeTimeout);
        }),
      ]).catch(() => false);
      const state = this.node.state.state;
      if (state === 'DOWN') return;
      if (healthy === true && state !== 'RUNNING') this.node.start('probe answered');
      else if (healthy !== true && state !== 'STOPPED') this.node.stop('probe failed');
    } finally {
      clearTimeout(timeout);
      this.probing = false;
    }
  }
}

function positive(name: string, value: number): number {
  return milliseconds(name, value, 'Sentinel option ');
}
