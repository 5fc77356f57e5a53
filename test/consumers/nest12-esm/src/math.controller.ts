import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { EventEmitter } from 'node:events';
import { KableContext } from 'nestjs-kable';

/** Events this process received, for the e2e spec (the processes print them too). */
export const received = new EventEmitter();

@Controller()
export class MathController {
  @MessagePattern('sum')
  sum(@Payload() numbers: number[], @Ctx() context: KableContext) {
    return { sum: numbers.reduce((a, b) => a + b, 0), iid: context.getServingNode().iid };
  }

  @EventPattern('noted')
  noted(@Payload() note: { from: string }) {
    received.emit('noted', note);
    console.log(JSON.stringify({ event: note }));
  }
}
