import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Observable } from 'rxjs';
import { busyStateOf } from '../../node/busy-state.js';
import { KableContext } from '../kable.context.js';
import { KABLE_DOING_REASON } from '../kable.constants.js';

/** Holds the serving node busy from the handler's start until its stream ends or is unsubscribed. */
@Injectable()
export class KableDoingInterceptor implements NestInterceptor {
  constructor(private readonly reflector: Reflector) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const rpc = context.getType() === 'rpc' ? context.switchToRpc().getContext<unknown>() : undefined;
    if (!(rpc instanceof KableContext)) return next.handle();
    const reason =
      this.reflector.getAllAndOverride<string | undefined>(KABLE_DOING_REASON, [
        context.getHandler(),
        context.getClass(),
      ]) ?? 'busy';
    const busy = busyStateOf(rpc.getNode());
    return new Observable((subscriber) => {
      const release = busy.hold(reason);
      const subscription = next.handle().subscribe({
        next: (value) => subscriber.next(value),
        error: (error: unknown) => {
          release();
          subscriber.error(error);
        },
        complete: () => {
          release();
          subscriber.complete();
        },
      });
      return () => {
        release();
        subscription.unsubscribe();
      };
    });
  }
}
