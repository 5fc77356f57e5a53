import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { telemetry } from '../../lib/telemetry/telemetry.js';
import { MathModule } from './fixtures/math.module.js';

// OpenTelemetry is an optional peer. The Nest 11 install (test/compat, `npm run test:nest11`) has no
// @opentelemetry/api, and jest.compat.config.js resolves it there, so this suite proves both sides: under
// Nest 11 the package is absent and no instrumentation loads; under Nest 12 it is installed but no SDK is
// registered. Either way the transport works and sends the caller's metadata unchanged.
const withoutApi = process.env.KABLE_NEST_COMPAT === '11';

describe(withoutApi ? 'without @opentelemetry/api' : 'with @opentelemetry/api and no SDK', () => {
  const bus = new MemoryBus();
  const discovery = () => ({ transport: bus.transport(), advertiseInterval: 50 });
  let app: INestMicroservice | undefined;
  let client: KableClientProxy | undefined;

  afterEach(async () => {
    await client?.close();
    await app?.close();
  });

  it(
    withoutApi ? 'serves requests and loads no instrumentation' : 'serves requests through no-op spans',
    async () => {
      expect(telemetry.state).toBe('idle');
      app = await NestFactory.createMicroservice<MicroserviceOptions>(MathModule, {
        strategy: new KableServer({
          id: 'math',
          replica: true,
          host: '127.0.0.1',
          port: 0,
          discovery: discovery(),
        }),
        logger: false,
      });
      await app.listen();
      expect(telemetry.state).toBe(withoutApi ? 'absent' : 'active');
      expect(telemetry.active === undefined).toBe(withoutApi);
      // With the API but no SDK, a request makes no trace object at all: nothing would record it.
      if (!withoutApi) expect(telemetry.active!.outbound('request', 'sum', undefined)).toBeUndefined();

      client = new KableClientProxy({ host: '127.0.0.1', discovery: discovery(), target: 'math' });
      await client.whenServed('context');
      expect(await firstValueFrom(client.send<number>({ cmd: 'sum' }, [1, 2]))).toBe(3);
      expect(await lastValueFrom(client.send<number>('count', 3).pipe(toArray()))).toEqual([1, 2, 3]);
      // No propagator registered (or no API): nothing is added to what the handler sees.
      expect(await firstValueFrom(client.send('context', {}))).toMatchObject({
        pattern: 'context',
        metadata: null,
      });
      await expect(firstValueFrom(client.send('rpc-error', {}))).rejects.toEqual({
        code: 'E_MATH',
        reason: 'refused on purpose',
      });
    },
  );
});
