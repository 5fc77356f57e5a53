import { Controller, Module } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';

/** The one handler every configuration serves: the sum of a small array. */
@Controller()
export class BenchMathController {
  @MessagePattern({ cmd: 'sum' })
  sum(@Payload() numbers: number[]): number {
    let total = 0;
    for (const n of numbers) total += n;
    return total;
  }
}

@Module({ controllers: [BenchMathController] })
export class BenchMathModule {}
