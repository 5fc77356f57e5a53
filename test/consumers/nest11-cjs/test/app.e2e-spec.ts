import { INestMicroservice } from '@nestjs/common';
import { ClientProxy, ClientsModule } from '@nestjs/microservices';
import { Test, TestingModule } from '@nestjs/testing';
import { once } from 'node:events';
import { KableClientProxy, KableServer } from 'nestjs-kable';
import { lastValueFrom } from 'rxjs';
import { AppModule } from './../src/app.module';
import { received } from './../src/math.controller';

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

  beforeAll(async () => {
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

  afterAll(async () => {
    await clients?.close();
    await server?.close();
  });

  it('sends a message and gets the reply', async () => {
    const reply = await lastValueFrom(math.send<{ sum: number }>('sum', [1, 2, 3]));
    expect(reply.sum).toBe(6);
  });

  it('emits an event the server handles', async () => {
    const handled = once(received, 'noted');
    await lastValueFrom(math.emit('noted', { from: 'e2e' }));
    expect(await handled).toEqual([{ from: 'e2e' }]);
  });
});
