import { SetMetadata, UseInterceptors, applyDecorators } from '@nestjs/common';
import { KABLE_DOING_REASON } from '../kable.constants.js';
import { KableDoingInterceptor } from './kable-doing.interceptor.js';

/**
 * Marks a handler (or every handler of a controller) as busy work: while at least one runs, its node
 * is DOING_SOMETHING and balancers elsewhere skip it; when the last ends (value, error or
 * cancellation) the node is RUNNING again, unless it was stopped meanwhile.
 *
 * @MessagePattern('rebuild') @KableDoing('rebuilding the index') rebuild() { ... }
 */
export function KableDoing(reason = 'busy'): ClassDecorator & MethodDecorator {
  return applyDecorators(SetMetadata(KABLE_DOING_REASON, reason), UseInterceptors(KableDoingInterceptor));
}
