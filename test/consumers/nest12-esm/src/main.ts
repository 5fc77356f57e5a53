import { NestFactory } from '@nestjs/core';
import { KableServer } from 'nestjs-kable';
import { AppModule } from './app.module.js';
import { discovery } from './discovery.js';

// One replica of the "math" service.
async function bootstrap() {
  const server = new KableServer({ id: 'math', replica: true, host: '127.0.0.1', discovery: discovery() });
  const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: ['error'] });
  app.enableShutdownHooks();
  await app.listen();
  console.log(JSON.stringify({ ready: true, iid: server.unwrap().iid }));
}
void bootstrap();
