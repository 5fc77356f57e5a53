import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientProxy, ClientsModule } from '@nestjs/microservices';
import { KableClientProxy } from 'nestjs-kable';
import { lastValueFrom } from 'rxjs';
import { discovery } from './discovery';

@Module({
  imports: [
    ClientsModule.register([
      {
        name: 'MATH',
        customClass: KableClientProxy,
        options: { target: 'math', host: '127.0.0.1', discovery: discovery() },
      },
    ]),
  ],
})
class CallerModule {}

// Calls "math" until both replicas have served (at most 200 requests each round); asks each replica for
// a row it cannot encode (a bigint), and checks that both still serve after; then emits one event.
async function bootstrap() {
  const app = await NestFactory.createApplicationContext(CallerModule, { logger: ['error'] });
  const math = app.get<ClientProxy>('MATH');
  await math.connect();
  let requests = 0;
  const sumUntilBothServed = async () => {
    const servedBy = new Set<string>();
    for (let round = 0; servedBy.size < 2 && round < 200; round++) {
      const reply = await lastValueFrom(math.send<{ sum: number; iid: string }>('sum', [requests, 1]));
      if (reply.sum !== requests + 1) throw new Error(`sum of [${requests}, 1] came back as ${reply.sum}`);
      servedBy.add(reply.iid);
      requests++;
    }
    return [...servedBy].sort();
  };
  const servedBy = await sumUntilBothServed();
  // Round-robin: two in a row most likely reach both replicas (each must serve on after).
  const unencodable: unknown[] = [];
  for (let ask = 0; ask < 2; ask++) {
    try {
      await lastValueFrom(math.send('row', {}));
      unencodable.push('no error');
    } catch (error) {
      unencodable.push(error);
    }
  }
  const servedAfter = await sumUntilBothServed();
  await lastValueFrom(math.emit('noted', { from: 'caller' }));
  console.log(JSON.stringify({ result: { requests, servedBy, unencodable, servedAfter } }));
  await app.close();
}
bootstrap().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
