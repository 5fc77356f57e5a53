import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import net from 'node:net';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { FrameWriter } from '../../lib/data-plane/frame-writer.js';
import { FrameType } from '../../lib/data-plane/frames.js';
import { MemoryBus } from '../../lib/discovery/memory.transport.js';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { KableServer } from '../../lib/nest/kable.server.js';
import { telemetry } from '../../lib/telemetry/telemetry.js';
import { waitUntil } from '../support/events.js';
import { MathLedger, MathModule } from '../nest/fixtures/math.module.js';
import { UnencodableLedger, UnencodableModule } from '../nest/fixtures/unencodable.module.js';
import { TracedModule } from './fixtures/traced.module.js';
import { installOtel, type Otel } from './support/otel.js';

// Real Nest apps and TCP data planes in one process, with an OpenTelemetry SDK registered and its
// in-memory span exporter: what Kable's spans look like and how they link.
const discovery = (bus: MemoryBus) => ({ transport: bus.transport(), advertiseInterval: 50 });

describe('OpenTelemetry traces', () => {
  let otel: Otel;
  let bus = new MemoryBus();
  const apps: INestMicroservice[] = [];
  const clients: KableClientProxy[] = [];

  beforeAll(() => {
    otel = installOtel();
  });
  afterAll(() => otel.shutdown());
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
    bus = new MemoryBus();
    otel.spans.reset();
  });

  async function service(
    module: unknown,
    id: string,
    options: Partial<ConstructorParameters<typeof KableServer>[0]> = {},
  ): Promise<KableServer> {
    const server = new KableServer({
      id,
      replica: true,
      host: '127.0.0.1',
      port: 0,
      discovery: discovery(bus),
      ...options,
    });
    const app = await NestFactory.createMicroservice<MicroserviceOptions>(module as never, {
      strategy: server,
      logger: false,
    });
    await app.listen();
    apps.push(app);
    return server;
  }

  function client(options: ConstructorParameters<typeof KableClientProxy>[0] = {}): KableClientProxy {
    const proxy = new KableClientProxy({ host: '127.0.0.1', discovery: discovery(bus), ...options });
    clients.push(proxy);
    return proxy;
  }

  function finished(): ReadableSpan[] {
    return otel.spans.getFinishedSpans();
  }

  /** Waits until a span matching `test` has ended (the server's may end after the client saw the reply). */
  async function span(test: (span: ReadableSpan) => boolean, what: string): Promise<ReadableSpan> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = finished().find(test);
      if (found !== undefined) return found;
      if (Date.now() > deadline) {
        throw new Error(
          `no ${what} span; ended: ${finished()
            .map((s) => `${s.name}/${s.kind}`)
            .join(', ')}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  const clientSpan = (name: string) =>
    span((s) => s.name === name && s.kind === SpanKind.CLIENT, `CLIENT ${name}`);
  const serverSpan = (name: string) =>
    span((s) => s.name === name && s.kind === SpanKind.SERVER, `SERVER ${name}`);

  it('loads the instrumentation once a client or server starts', async () => {
    await service(MathModule, 'math');
    expect(telemetry.state).toBe('active');
    expect(telemetry.active).toBeDefined();
  });

  it('links the caller, its CLIENT span and the SERVER span, with the RPC attributes', async () => {
    const math = await service(MathModule, 'math');
    const proxy = client({ target: 'math' });
    await proxy.whenServed({ cmd: 'sum' });
    const root = trace.getTracer('test').startSpan('caller');
    const sum = await context.with(trace.setSpan(context.active(), root), () =>
      firstValueFrom(proxy.send<number>({ cmd: 'sum' }, [1, 2])),
    );
    root.end();
    expect(sum).toBe(3);

    const outbound = await clientSpan('{"cmd":"sum"}');
    const inbound = await serverSpan('{"cmd":"sum"}');
    expect(outbound.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(outbound.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(inbound.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(inbound.parentSpanContext?.spanId).toBe(outbound.spanContext().spanId);
    expect(inbound.parentSpanContext?.isRemote).toBe(true);

    expect(outbound.attributes).toMatchObject({
      'rpc.system.name': 'kable',
      'rpc.system': 'kable',
      'rpc.method': '{"cmd":"sum"}',
      'rpc.response.status_code': 'OK',
      'server.address': '127.0.0.1',
      'server.port': math.node.port,
      'kable.node.id': 'math',
      'kable.node.iid': math.node.iid,
      'kable.attempts': 1,
      'kable.response.values': 1,
    });
    expect(outbound.attributes['error.type']).toBeUndefined();
    // firstValueFrom unsubscribes on the last value: that is a completed request, not a cancelled one.
    expect(outbound.status.code).toBe(SpanStatusCode.UNSET);
    expect(inbound.attributes).toMatchObject({
      'rpc.system.name': 'kable',
      'rpc.method': '{"cmd":"sum"}',
      'rpc.response.status_code': 'OK',
      'server.port': math.node.port,
      'kable.node.id': 'math',
      'kable.node.iid': math.node.iid,
      'kable.caller.id': proxy.node.id,
      'kable.caller.iid': proxy.node.iid,
      'kable.response.values': 1,
    });
    expect(inbound.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('carries traceparent, tracestate and baggage in the request metadata the handler sees', async () => {
    const math = await service(MathModule, 'math');
    const proxy = client({ target: 'math' });
    await proxy.whenServed('context');
    const root = trace.getTracer('test').startSpan('caller');
    let active = trace.setSpan(context.active(), root);
    active = propagation.setBaggage(active, propagation.createBaggage({ tenant: { value: 'acme' } }));
    const seen = await context.with(active, () =>
      firstValueFrom(proxy.send<{ metadata: Record<string, string> }>('context', {})),
    );
    root.end();
    const outbound = await clientSpan('context');
    expect(seen.metadata.traceparent).toBe(
      `00-${root.spanContext().traceId}-${outbound.spanContext().spanId}-01`,
    );
    expect(seen.metadata.baggage).toBe('tenant=acme');
    expect(math.node).toBeDefined();
  });

  for (const path of ['direct replies', 'processing hooks'] as const) {
    it(`makes the handler's own spans children of the SERVER span (${path})`, async () => {
      const server = await service(TracedModule.with(client()), 'traced');
      if (path === 'processing hooks') {
        // What @nestjs/observe-style hooks do: Nest's generic path instead of the direct reply.
        server.setOnProcessingStartHook((_transport, _context, done) => void done());
      }
      const proxy = client({ target: 'traced' });
      await proxy.whenServed('inner');
      expect(await firstValueFrom(proxy.send<string>('inner', {}))).toBe('done');
      const inbound = await serverSpan('inner');
      const work = await span((s) => s.name === 'handler work', 'handler work');
      expect(work.spanContext().traceId).toBe(inbound.spanContext().traceId);
      expect(work.parentSpanContext?.spanId).toBe(inbound.spanContext().spanId);
    });
  }

  it('ends both spans with an error status when the handler fails', async () => {
    await service(MathModule, 'math');
    const proxy = client({ target: 'math' });
    await proxy.whenServed('rpc-error');
    await expect(firstValueFrom(proxy.send('rpc-error', {}))).rejects.toEqual({
      code: 'E_MATH',
      reason: 'refused on purpose',
    });
    const outbound = await clientSpan('rpc-error');
    const inbound = await serverSpan('rpc-error');
    for (const s of [outbound, inbound]) {
      expect(s.status.code).toBe(SpanStatusCode.ERROR);
      expect(s.attributes['error.type']).toBe('HANDLER_ERROR');
      expect(s.attributes['rpc.response.status_code']).toBe('HANDLER_ERROR');
    }
  });

  it('names the Kable error code on a client failure (timeout) and cancels the server span', async () => {
    await service(MathModule, 'math');
    const proxy = client({ target: 'math', timeout: 300 });
    await proxy.whenServed('endless');
    await expect(lastValueFrom(proxy.send('endless', {}))).rejects.toMatchObject({ code: 'KABLE_TIMEOUT' });
    const outbound = await clientSpan('endless');
    expect(outbound.status.code).toBe(SpanStatusCode.ERROR);
    expect(outbound.status.message).toMatch(/^KABLE_TIMEOUT: /);
    expect(outbound.attributes['error.type']).toBe('KABLE_TIMEOUT');
    const inbound = await serverSpan('endless');
    expect(inbound.attributes['rpc.response.status_code']).toBe('CANCELLED');
    expect(inbound.events.map((e) => e.name)).toContain('kable.cancelled');
  });

  it('ends a cancelled request with CANCELLED on both sides: an error for the caller, not for the server', async () => {
    await service(MathModule, 'math');
    const proxy = client({ target: 'math' });
    await proxy.whenServed('endless');
    const ledger = apps[0].get(MathLedger);
    // The handler sends one value at once and never completes: unsubscribe once it arrived.
    let subscription: { unsubscribe(): void } | undefined;
    await new Promise((resolve) => {
      subscription = proxy.send('endless', {}).subscribe({ next: resolve });
    });
    subscription!.unsubscribe();
    await waitUntil(() => ledger.cancelled === 1, [ledger], ['changed'], 5000, 'the handler to be cancelled');
    const outbound = await clientSpan('endless');
    expect(outbound.status.code).toBe(SpanStatusCode.ERROR);
    expect(outbound.attributes['rpc.response.status_code']).toBe('CANCELLED');
    expect(outbound.attributes['error.type']).toBe('CANCELLED');
    const inbound = await serverSpan('endless');
    expect(inbound.status.code).toBe(SpanStatusCode.UNSET);
    expect(inbound.attributes['rpc.response.status_code']).toBe('CANCELLED');
    expect(inbound.attributes['kable.response.values']).toBe(1);
  });

  it('gives a stream one span per side, with the count of values', async () => {
    await service(MathModule, 'math');
    const proxy = client({ target: 'math' });
    await proxy.whenServed('count');
    expect(await lastValueFrom(proxy.send<number>('count', 5).pipe(toArray()))).toEqual([1, 2, 3, 4, 5]);
    const outbound = await clientSpan('count');
    const inbound = await serverSpan('count');
    expect(finished().filter((s) => s.name === 'count')).toHaveLength(2);
    expect(outbound.attributes['kable.response.values']).toBe(5);
    expect(inbound.attributes['kable.response.values']).toBe(5);
    expect(outbound.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('counts the values a caller took before it unsubscribed from a stream', async () => {
    await service(MathModule, 'math');
    const proxy = client({ target: 'math' });
    await proxy.whenServed('count');
    expect(await lastValueFrom(proxy.send<number>('count', 1000).pipe(take(3), toArray()))).toEqual([
      1, 2, 3,
    ]);
    const outbound = await clientSpan('count');
    expect(outbound.attributes['kable.response.values']).toBe(3);
    expect(outbound.attributes['rpc.response.status_code']).toBe('CANCELLED');
  });

  it('records a refusal and the retry on another replica as events of the one CLIENT span', async () => {
    const [first, second] = [await service(MathModule, 'math'), await service(MathModule, 'math')];
    const proxy = client({ target: 'math' });
    await proxy.whenServed({ cmd: 'sum' }, { count: 2 });
    // Stopped in this very tick: the client still routes to it, the server refuses, the client retries.
    first.node.stop('maintenance');
    const sums = await Promise.all(
      [1, 2].map((n) => firstValueFrom(proxy.send<number>({ cmd: 'sum' }, [n]))),
    );
    expect(sums).toEqual([1, 2]);
    const outbound = finished().filter((s) => s.kind === SpanKind.CLIENT);
    const retried = outbound.find((s) => s.attributes['kable.attempts'] === 2);
    expect(retried).toBeDefined();
    expect(retried!.events.map((e) => e.name)).toEqual(['kable.refused']);
    expect(retried!.events[0].attributes).toMatchObject({
      'error.type': 'KABLE_REFUSED',
      'kable.node.iid': first.node.iid,
    });
    expect(retried!.attributes['kable.node.iid']).toBe(second.node.iid);
    expect(retried!.status.code).toBe(SpanStatusCode.UNSET);
    const refused = await span(
      (s) => s.kind === SpanKind.SERVER && s.attributes['rpc.response.status_code'] === 'KABLE_REFUSED',
      'refused SERVER',
    );
    expect(refused.parentSpanContext?.spanId).toBe(retried!.spanContext().spanId);
    expect(refused.events.map((e) => e.name)).toEqual(['kable.refused']);
  });

  it('gives an emit a PRODUCER span and each handler a CONSUMER span, its child', async () => {
    await service(TracedModule.with(client()), 'traced');
    const proxy = client();
    await proxy.whenServed('inner');
    await lastValueFrom(proxy.emit('noted', { n: 1 }), { defaultValue: undefined });
    const producer = await span((s) => s.kind === SpanKind.PRODUCER, 'PRODUCER');
    const consumer = await span((s) => s.kind === SpanKind.CONSUMER, 'CONSUMER');
    const work = await span((s) => s.name === 'event work', 'event work');
    expect(producer.name).toBe('send noted');
    expect(consumer.name).toBe('process noted');
    expect(consumer.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
    expect(work.parentSpanContext?.spanId).toBe(consumer.spanContext().spanId);
    expect(producer.attributes).toMatchObject({
      'messaging.system': 'kable',
      'messaging.destination.name': 'noted',
      'kable.node.id': 'traced',
    });
  });

  describe('a reply the data plane replaced by an error of its own', () => {
    /** The SERVER span ended with `code` as an error: what the caller got, not OK or CANCELLED. */
    function expectFailedWith(inbound: ReadableSpan, code: string): void {
      expect(inbound.status.code).toBe(SpanStatusCode.ERROR);
      expect(inbound.status.message).toMatch(/cannot be encoded|over the .*-byte limit|was cut/);
      expect(inbound.attributes['rpc.response.status_code']).toBe(code);
      expect(inbound.attributes['error.type']).toBe(code);
      expect(inbound.events.map((e) => e.name)).not.toContain('kable.cancelled');
    }

    it("records KABLE_PAYLOAD_TOO_LARGE for a reply over the caller's maxFrameSize", async () => {
      await service(UnencodableModule, 'rows');
      const proxy = client({ target: 'rows', maxFrameSize: 2048 });
      await proxy.whenServed('echo');
      await expect(firstValueFrom(proxy.send('echo', 'x'.repeat(1500).repeat(2)))).rejects.toMatchObject({
        code: 'KABLE_PAYLOAD_TOO_LARGE',
      });
      expectFailedWith(await serverSpan('echo'), 'KABLE_PAYLOAD_TOO_LARGE');
    });

    it('records KABLE_UNENCODABLE for a reply MessagePack cannot encode, direct or through hooks', async () => {
      const server = await service(UnencodableModule, 'rows');
      const proxy = client({ target: 'rows' });
      await proxy.whenServed('bigint.async');
      await expect(firstValueFrom(proxy.send('bigint.async', {}))).rejects.toMatchObject({
        code: 'KABLE_UNENCODABLE',
      });
      expectFailedWith(await serverSpan('bigint.async'), 'KABLE_UNENCODABLE');
      server.setOnProcessingStartHook((_transport, _context, done) => void done());
      await expect(lastValueFrom(proxy.send('stream', {}))).rejects.toMatchObject({
        code: 'KABLE_UNENCODABLE',
      });
      const stream = await serverSpan('stream');
      expectFailedWith(stream, 'KABLE_UNENCODABLE');
      expect(stream.attributes['kable.response.values']).toBe(1); // the unencodable one was not sent
    });

    it('records KABLE_BACKPRESSURE for a stream cut because its caller stopped reading', async () => {
      const server = await service(UnencodableModule, 'rows', {
        writeHighWaterMark: 64 * 1024,
        maxStreamBacklog: 64 * 1024,
      });
      const ledger = apps[0].get(UnencodableLedger);
      // A caller that sends the request and never reads: the stream's values pile up until it is cut.
      const socket = net.connect(server.node.port, '127.0.0.1');
      socket.pause();
      await new Promise((resolve) => socket.once('connect', resolve));
      try {
        socket.write(new FrameWriter().encodeOne([FrameType.REQUEST, 1, 'flood', null]));
        await waitUntil(() => ledger.unsubscribed === 1, [ledger], ['changed'], 10_000, 'the stream cut');
        expectFailedWith(await serverSpan('flood'), 'KABLE_BACKPRESSURE');
      } finally {
        socket.destroy();
      }
    });
  });
});
