import type { ReplyChannel } from '../data-plane/data-plane-server.js';

/**
 * Answers a request whose response stream failed, as Nest's TCP transport would: it sends the error's
 * JSON form, and its client treats a falsy error as no error at all (the stream just completes).
 * Handler exceptions arrive here already shaped by Nest's exception filter (`RpcException` payloads, or
 * `{ status: 'error', message: 'Internal server error' }`); an `Error` instance only arrives when a custom
 * filter emits one, and then only its own enumerable properties travel (`{}` for a bare Error, never its
 * message or stack). Both reply paths (direct and through the processing hooks) answer through here.
 */
export function replyError(reply: ReplyChannel, error: unknown): void {
  if (!error) reply.complete();
  else reply.error(wireForm(error));
}

function wireForm(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const toJSON = (error as { toJSON?: () => unknown }).toJSON;
  return typeof toJSON === 'function' ? toJSON.call(error) : { ...error };
}
