import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule } from '@nestjs/microservices';
import { KableClientProxy } from 'nestjs-kable';
import { lastValueFrom } from 'rxjs';
import { discovery } from './discovery';

@Module({
  imports: [
    ClientsModule.register([
      {
        name: 'MATH',
        customClass: KableClientProxy,
        options: { target: 'math', host: '127.0.0.1', discovery: discovery(), timeout: 10_000 },
      },
    ]),
  ],
})
class LoadModule {}

// A long-running caller, for the rolling upgrade in test/consumers/run.mjs:
//   node dist/load.js [lanes]
// Once "math" has 3 replicas, keeps <lanes> (default 4) requests in flight; prints {"ready":true}, then
// {"progress":{...}} every 100 answers and at the 1st, 101st, ... failure, and on SIGTERM stops sending,
// waits for what is in flight and prints {"final":{...}} before it leaves. Counts: answers, failures by
// code (first messages), and what this node ignored from a later protocol version (unknown frame types
// and advert fields).
async function bootstrap() {
  const app = await NestFactory.createApplicationContext(LoadModule, { logger: ['error'] });
  const math = app.get<KableClientProxy>('MATH');
  await math.connect();
  // Shorter than run.mjs's wait for "ready", so that a failure here is what it reports.
  await math.whenServed('sum', { count: 3, timeout: 20_000 });
  let ok = 0;
  let failed = 0;
  const errors: Record<string, string[]> = {};
  let running = true;
  const counts = () => {
    const stats = math.unwrap().stats();
    return {
      ok,
      failed,
      errors,
      unknownFrames: stats['client.unknownFrames'] ?? 0,
      unknownAdvertFields: stats.unknownAdvertFields ?? 0,
    };
  };
  const lane = async (first: number) => {
    for (let n = first; running; n++) {
      try {
        const reply = await lastValueFrom(math.send<{ sum: number }>('sum', [n, 1]));
        if (reply.sum !== n + 1) throw new Error(`sum of [${n}, 1] came back as ${reply.sum}`);
        ok++;
        if (ok % 100 === 0) console.log(JSON.stringify({ progress: counts() }));
      } catch (error) {
        failed++;
        const messages = (errors[String((error as { code?: string }).code ?? 'error')] ??= []);
        if (messages.length < 5) messages.push(String((error as Error).message ?? error).slice(0, 300));
        if (failed % 100 === 1) console.log(JSON.stringify({ progress: counts() }));
        // A failure can be synchronous: let the event loop (and SIGTERM) in before the next try.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  };
  const lanes = Array.from({ length: Number(process.argv[2] ?? 4) }, (_, i) => lane(i * 1_000_000));
  console.log(JSON.stringify({ ready: true, iid: math.unwrap().iid }));
  process.once('SIGTERM', () => {
    running = false;
    void Promise.all(lanes).then(async () => {
      console.log(JSON.stringify({ final: counts() }));
      await app.close();
    });
  });
}
bootstrap().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
