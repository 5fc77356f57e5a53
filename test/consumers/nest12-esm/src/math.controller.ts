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

  /**
   * What a new user writes without thinking: a row with a bigint column (as Prisma returns one), which
   * MessagePack cannot encode. The caller must get a clear error and this replica must serve on.
   */
  @MessagePattern('row')
  async row() {
    await Promise.resolve();
    return { id: 1n, name: 'row' };
  }

  @EventPattern('noted')
  noted(@Payload() note: { from: string }) {
    received.emit('noted', note);
    console.log(JSON.stringify({ event: note }));
  }
}
