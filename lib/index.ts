// The public API. Everything else is internal and may change without notice.
export { kable, sentinel } from './kable.js';
export { KableNode, type KableNodeEvents, type PickOptions } from './node/kable-node.js';
export { KableSentinel, type SentinelOptions } from './node/sentinel.js';
export type { OverloadOptions } from './node/overload-monitor.js';
export type { PeerRecord } from './node/peer-record.js';
export { PROTOCOL_VERSION, type ProtocolVersion } from './node/protocol-version.js';
export type { NodeStatus } from './node/state-machine.js';
export type { RemovalReason } from './node/registry.js';
export * from './node/states.js';
export * from './node/errors.js';
export type * from './node/advert.js';
export type * from './node/options.js';
export type * from './node/discovery-transport.js';
export { MemoryBus, type MemoryBusOptions } from './discovery/memory.transport.js';
export { KableDataPlaneError } from './data-plane/data-plane-errors.js';
export type { LivenessOptions } from './data-plane/peer-liveness.js';
export { KableServer, type KableServerStatus } from './nest/kable.server.js';
export { KableClientProxy, type KableClientStatus } from './nest/kable.client.js';
export { KableRecord, KABLE_AFFINITY_METADATA, type KableRecordOptions } from './nest/kable-record.js';
export { KableContext, type KableCaller, type KableServingNode } from './nest/kable.context.js';
export { KableModule, type KableModuleOptions, type KableModuleAsyncOptions } from './nest/kable.module.js';
export { KableDoing } from './nest/decorators/kable-doing.decorator.js';
export { KableDoingInterceptor } from './nest/decorators/kable-doing.interceptor.js';
export { KableServingGuard } from './nest/guards/kable-serving.guard.js';
export {
  KableHealthIndicator,
  type KableHealthDetails,
  type KableHealthOptions,
} from './nest/kable.health.js';
export { KABLE_NODE, KABLE_TRANSPORT, NO_MESSAGE_HANDLER } from './nest/kable.constants.js';
export type { KableServerOptions, KableClientOptions } from './nest/kable.options.js';
