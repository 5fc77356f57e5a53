import { Controller, Module } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { range, type Observable } from 'rxjs';
import { map } from 'rxjs/operators';

/** The large-payload, string and stream handlers (bench/payloads.ts, bench/strings.ts, bench/streams.ts). */
@Controller()
export class BenchBytesController {
  /** A binary payload in, its length out: what the transport costs for moving bytes. */
  @MessagePattern('bytes')
  size(@Payload() data: Uint8Array): number {
    return data.byteLength;
  }

  /** A string payload in, its length out (bench/strings.ts). */
  @MessagePattern('text')
  length(@Payload() data: string): number {
    return data.length;
  }

  /** The same string as a field of an object: a string the codec meets inside a value (bench/strings.ts). */
  @MessagePattern('text-field')
  fieldLength(@Payload() data: { text: string }): number {
    return data.text.length;
  }

  /** `count` values of `size` bytes (0: the value is the small integer itself), as one stream. */
  @MessagePattern('stream')
  stream(@Payload() { count, size }: { count: number; size: number }): Observable<number | Uint8Array> {
    const block = Buffer.alloc(size, 7);
    return range(0, count).pipe(map((i) => (size === 0 ? i : block)));
  }
}

@Module({ controllers: [BenchBytesController] })
export class BenchBytesModule {}
