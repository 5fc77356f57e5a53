import {
  Inject,
  Injectable,
  Optional,
  ServiceUnavailableException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import type { KableNode } from '../../node/kable-node.js';
import { KABLE_NODE } from '../kable.constants.js';
import { KableContext } from '../kable.context.js';

/**
 * Lets a request through only while the node is RUNNING. Kable requests on a node that is not RUNNING
 * are already refused (and retried elsewhere) by the transport; this guard extends the same rule to
 * HTTP routes and other transports of a hybrid app, which get 503 Service Unavailable.
 */
@Injectable()
export class KableServingGuard implements CanActivate {
  constructor(@Optional() @Inject(KABLE_NODE) private readonly shared?: KableNode) {}

  canActivate(context: ExecutionContext): boolean {
    const rpc = context.getType() === 'rpc' ? context.switchToRpc().getContext<unknown>() : undefined;
    const node = rpc instanceof KableContext ? rpc.getNode() : this.shared;
    if (node === undefined) return true;
    const { state, reason } = node.state;
    if (state === 'RUNNING') return true;
    const message = `Node ${node.id} is ${state}${reason ? ` (${reason})` : ''}; try another replica.`;
    if (context.getType() === 'http') throw new ServiceUnavailableException(message);
    throw new RpcException({ status: 'error', code: 'KABLE_NOT_RUNNING', message });
  }
}
