// Nest's NATS transport as a peer row: the server subscribes in the queue group `math` (NATS spreads
// requests over the group's members), both ends talk to a nats-server on loopback (./nats-server.ts),
// with Nest's default JSON serialization.
import { NestFactory } from '@nestjs/core';
import { ClientNats, Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { BenchMathModule } from '../servers/math.controller.js';

type Call = () => Promise<unknown>;

const servers = (port: number) => [`nats://127.0.0.1:${port}`];

export async function serveNestNats(natsPort: number): Promise<number> {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(BenchMathModule, {
    transport: Transport.NATS,
    options: { servers: servers(natsPort), queue: 'math' },
    logger: false,
  });
  await app.listen();
  return natsPort;
}

export async function nestNatsCaller(
  natsPort: number,
  payload: number[],
): Promise<[Call, () => Promise<void>]> {
  const client = new ClientNats({ servers: servers(natsPort) });
  await client.connect();
  return [() => firstValueFrom(client.send({ cmd: 'sum' }, payload)), () => client.close()];
}
