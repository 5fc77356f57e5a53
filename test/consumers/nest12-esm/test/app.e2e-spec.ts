import type { INestMicroservice } from '@nestjs/common';
import { ClientsModule, type ClientProxy } from '@nestjs/microservices';
import { Test, type TestingModule } from '@nestjs/testing';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { KableClientProxy, KableServer } from 'nestjs-kable';
import { lastValueFrom } from 'rxjs';
import { AppModule } from '../src/app.module.js';
import { received } from '../src/math.controller.js';

// Server and client in the test process: a random multicast group and port on interface 127.0.0.1.
const random = (low: number, high: number) => low + Math.floor(Math.random() * (high - low));
const discovery = {
  mode: 'multicast' as const,
  address: `239.255.${random(1, 255)}.${random(1, 255)}`,
  port: random(20000, 60000),
  interface: '127.0.0.1',
  advertiseInterval: 100,
};

describe('Kable transport (e2e)', () => {
  let server: INestMicroservice;
  let clients: TestingModule;
  let math: ClientProxy;

  before(async () => {
    const serverModule = await Test.createTestingModule({ imports: [AppModule] }).compile();
    server = serverModule.createNestMicroservice({
      strategy: new KableServer({ id: 'math', host: '127.0.0.1', discovery }),
      logger: false,
    });
    await server.listen();
    clients = await Test.createTestingModule({
      imports: [
        ClientsModule.register([
          {
            name: 'MATH',
            customClass: KableClientProxy,
            options: { target: 'math', host: '127.0.0.1', discovery },
          },
        ]),
      ],
    }).compile();
    await clients.init();
    math = clients.get<ClientProxy>('MATH');
    await math.connect();
  });

  after(async () => {
    await clients?.close();
    await server?.close();
  });

  it('sends a message and gets the reply', async () => {
    const reply = await lastValueFrom(math.send<{ sum: number }>('sum', [1, 2, 3]));
    assert.equal(reply.sum, 6);
  });

  it('emits an event the server handles', async () => {
    const handled = once(received, 'noted');
    await lastValueFrom(math.emit('noted', { from: 'e2e' }));
    assert.deepEqual(await handled, [{ from: 'e2e' }]);
  });
});
