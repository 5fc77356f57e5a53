import { NestFactory } from '@nestjs/core';
import { KableServer } from 'nestjs-kable';
import { AppModule } from './app.module';
import { discovery } from './discovery';

// One replica of the "math" service.
async function bootstrap() {
  const server = new KableServer({ id: 'math', replica: true, host: '127.0.0.1', discovery: discovery() });
  const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: ['error'] });
  app.enableShutdownHooks();
  await app.listen();
  console.log(JSON.stringify({ ready: true, iid: server.unwrap().iid }));
  // What this replica ignored from callers of a later protocol version, for run.mjs's rolling upgrade.
  // `once`: Nest's shutdown hook sends SIGTERM again after closing, which must then end the process.
  process.once('SIGTERM', () => {
    const stats = server.unwrap().stats();
    const unknownFrames = stats['dataPlane.unknownFrames'] ?? 0;
    const unknownAdvertFields = stats.unknownAdvertFields ?? 0;
    console.log(JSON.stringify({ final: { unknownFrames, unknownAdvertFields } }));
  });
}
void bootstrap();
