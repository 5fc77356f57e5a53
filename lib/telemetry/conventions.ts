/**
 * Attribute and instrument names. RPC ones follow the OpenTelemetry RPC semantic conventions as of
 * v1.38 (release candidate: `rpc.system.name`, `rpc.response.status_code`, durations in seconds); events
 * follow the messaging conventions; `kable.*` names are Kable's own.
 */
export const ATTR = {
  RPC_SYSTEM_NAME: 'rpc.system.name',
  /** The pre-1.38 name of rpc.system.name, still read by many backends' RPC views: both are set. */
  RPC_SYSTEM: 'rpc.system',
  RPC_METHOD: 'rpc.method',
  RPC_METHOD_ORIGINAL: 'rpc.method_original',
  RPC_STATUS: 'rpc.response.status_code',
  ERROR_TYPE: 'error.type',
  SERVER_ADDRESS: 'server.address',
  SERVER_PORT: 'server.port',
  MESSAGING_SYSTEM: 'messaging.system',
  MESSAGING_OPERATION: 'messaging.operation.type',
  MESSAGING_DESTINATION: 'messaging.destination.name',
  NETWORK_IO_DIRECTION: 'network.io.direction',
  /** The node that serves (on client spans: the one the request went to). */
  NODE_ID: 'kable.node.id',
  NODE_IID: 'kable.node.iid',
  /** The calling node, on server spans (from the connection's hello). */
  CALLER_ID: 'kable.caller.id',
  CALLER_IID: 'kable.caller.iid',
  /** Replicas tried, on client spans (1 without retries). */
  ATTEMPTS: 'kable.attempts',
  /** Reply values sent or received: 1 for a plain reply, the count for a stream. */
  VALUES: 'kable.response.values',
  PEER_STATE: 'kable.peer.state',
  PEER_SERVICE: 'kable.peer.service',
  REASON: 'kable.reason',
} as const;

export const SYSTEM = 'kable';

/** Span events. */
export const EVENT = {
  /** A replica refused the request (not RUNNING, too busy); the event carries which one. */
  REFUSED: 'kable.refused',
  /** An attempt failed before reaching a handler; the request goes to the next replica. */
  RETRY: 'kable.retry',
  /** The other side cancelled (the caller unsubscribed, or its connection closed). */
  CANCELLED: 'kable.cancelled',
} as const;

/** rpc.response.status_code values besides the KABLE_* error codes. */
export const STATUS = {
  OK: 'OK',
  /** The caller unsubscribed before the end. */
  CANCELLED: 'CANCELLED',
  /** The handler threw or its stream errored: the caller got the handler's error payload. */
  HANDLER_ERROR: 'HANDLER_ERROR',
  /** No handler for the pattern on the node that got the request. */
  NO_HANDLER: 'NO_HANDLER',
} as const;

/** A Kable error's code (KABLE_TIMEOUT, KABLE_REFUSED...), else HANDLER_ERROR: the server's payload. */
export function statusOf(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('KABLE_')) return code;
  }
  return STATUS.HANDLER_ERROR;
}

/** A readable line for the span status: the error's message, or the payload's `message`. */
export function messageOf(error: unknown): string | undefined {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  if (error !== null && typeof error === 'object') {
    const message = (error as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  }
  return undefined;
}
