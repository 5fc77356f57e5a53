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

// Calls "math" until both replicas have served (at most 200 requests), then emits one event.
async function bootstrap() {
  const app = await NestFactory.createApplicationContext(CallerModule, { logger: ['error'] });
  const math = app.get<ClientProxy>('MATH');
  await math.connect();
  const servedBy = new Set<string>();
  let requests = 0;
  while (servedBy.size < 2 && requests < 200) {
    const reply = await lastValueFrom(math.send<{ sum: number; iid: string }>('sum', [requests, 1]));
    if (reply.sum !== requests + 1) throw new Error(`sum of [${requests}, 1] came back as ${reply.sum}`);
    servedBy.add(reply.iid);
    requests++;
  }
  await lastValueFrom(math.emit('noted', { from: 'caller' }));
  console.log(JSON.stringify({ result: { requests, servedBy: [...servedBy].sort() } }));
  await app.close();
}
bootstrap().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
