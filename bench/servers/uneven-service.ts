// One replica of the "uneven" service in its own process, for bench/balancing.ts:
//   node --import ./scripts/register-ts.js bench/servers/uneven-service.ts <handler ms> '<KableServer options JSON>'
// Prints {"ready":true,"iid":...} once listening, and {"served":n} when sent "stats" on stdin. Its
// behaviour changes at run time: "delay <ms>" (answers {"delay":ms}), "fail internal|rpc|no" ({"fail":...}).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { createInterface } from 'node:readline';
import { KableServer } from '../../lib/nest/kable.server.js';
import { UnevenBehaviour, UnevenModule } from '../../test/nest/fixtures/uneven.module.js';

const [delay, optionsJson] = process.argv.slice(2);
const server = new KableServer(JSON.parse(optionsJson));
const app = await NestFactory.createMicroservice<MicroserviceOptions>(UnevenModule, {
  strategy: server,
  logger: false,
});
await app.listen();
const behaviour = app.get(UnevenBehaviour);
behaviour.delayMs = Number(delay);
const line = (value: unknown) => process.stdout.write(JSON.stringify(value) + '\n');
line({ ready: true, iid: server.node.iid });
createInterface({ input: process.stdin }).on('line', (command) => {
  const [verb, value] = command.split(' ');
  if (verb === 'stats') line({ served: behaviour.served });
  else if (verb === 'delay') line({ delay: (behaviour.delayMs = Number(value)) });
  else if (verb === 'fail' && (value === 'internal' || value === 'rpc' || value === 'no')) {
    line({ fail: (behaviour.fail = value) });
  }
});
