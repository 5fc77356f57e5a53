import { Controller, Injectable, Module } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { KableDoing } from '../../lib/index.js';

/** What this replica did, reported to the console. */
@Injectable()
export class Counters {
  served = 0;
  inFlight = 0;
}

@Controller()
export class MathController {
  constructor(private readonly counters: Counters) {}

  @MessagePattern({ cmd: 'sum' })
  async sum(@Payload() numbers: number[]): Promise<number> {
    this.counters.inFlight++;
    try {
      // A little work, so requests overlap and "in flight" means something.
      await new Promise((resolve) => setTimeout(resolve, 2));
      this.counters.served++;
      return numbers.reduce((total, n) => total + n, 0);
    } finally {
      this.counters.inFlight--;
    }
  }

  /** A long job: the replica is DOING_SOMETHING, and skipped by every client, until it ends. */
  @MessagePattern('rebuild')
  @KableDoing('rebuilding the cache')
  async rebuild(@Payload() ms: number): Promise<string> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return 'rebuilt';
  }
}

@Module({ controllers: [MathController], providers: [Counters] })
export class MathModule {}
