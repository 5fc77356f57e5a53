import { MemoryBus, type MemoryBusOptions } from '../../lib/discovery/memory.transport.js';
import { KableNode } from '../../lib/node/kable-node.js';
import type { KableOptions } from '../../lib/node/options.js';

/** Nodes on one in-memory bus, taken down together after each test. */
export class MemoryCluster {
  readonly bus: MemoryBus;
  readonly nodes: KableNode[] = [];

  constructor(options: MemoryBusOptions = {}) {
    this.bus = new MemoryBus(options);
  }

  node(
    id: string,
    options: Omit<KableOptions, 'discovery'> & { advertiseInterval?: number; nodeTimeout?: number } = {},
  ): KableNode {
    const { advertiseInterval = 50, nodeTimeout, ...rest } = options;
    const node = new KableNode(
      id,
      { host: '127.0.0.1', ...rest, discovery: { advertiseInterval, nodeTimeout } },
      this.bus.transport(),
    );
    this.nodes.push(node);
    return node;
  }

  async up(id: string, options: Parameters<MemoryCluster['node']>[1] = {}): Promise<KableNode> {
    const node = this.node(id, options);
    await node.up();
    return node;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.down()));
  }
}
