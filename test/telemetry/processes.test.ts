import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { firstValueFrom } from 'rxjs';
import { KableClientProxy } from '../../lib/nest/kable.client.js';
import { loopbackDiscovery } from '../support/loopback-discovery.js';
import { runFixture, type ChildFixture } from '../support/processes.js';
import { installOtel, spanLine, type Otel, type SpanLine } from './support/otel.js';

// One trace across three processes: this test (the caller), "relay" and "math", each with its own SDK.
const SERVICE = 'test/telemetry/fixtures/traced-service.ts';

describe('one trace across Kable hops in separate processes', () => {
  let otel: Otel;
  const children: ChildFixture[] = [];
  const clients: KableClientProxy[] = [];

  beforeAll(() => {
    otel = installOtel();
  });
  afterAll(() => otel.shutdown());
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL');
    otel.spans.reset();
  });

  function service(
    role: 'math' | 'relay',
    discovery: ReturnType<typeof loopbackDiscovery>,
    nest: 11 | 12,
  ): ChildFixture {
    const options = { id: role, replica: true, host: '127.0.0.1', port: 0, discovery, leaveGrace: 100 };
    // KABLE_NEST_COMPAT=11 makes the child load Nest 11 (test/support/ts-hooks.js), 12 otherwise.
    const child = runFixture(SERVICE, [role, JSON.stringify(options)], 60_000, undefined, [], {
      KABLE_NEST_COMPAT: String(nest),
    });
    children.push(child);
    return child;
  }

  /** Resolves with the first span line of `child` that `test` accepts. */
  function spanFrom(child: ChildFixture, test: (span: SpanLine) => boolean, what: string): Promise<SpanLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.lines.off('line', onLine);
        reject(new Error(`no ${what} span within 10 s. stderr:\n${child.stderr()}`));
      }, 10_000);
      const onLine = (value: Record<string, unknown>) => {
        const span = value.span as SpanLine | undefined;
        if (span === undefined || !test(span)) return;
        clearTimeout(timer);
        child.lines.off('line', onLine);
        resolve(span);
      };
      child.lines.on('line', onLine);
    });
  }

  it.each([12, 11] as const)(
    'caller -> relay -> math on Nest %i: one trace id, each span the parent of the next',
    async (nest) => {
      const discovery = loopbackDiscovery();
      const math = service('math', discovery, nest);
      const relay = service('relay', discovery, nest);
      const ready = await Promise.all([math.ready, relay.ready]);
      expect(ready.map((r) => r.nest)).toEqual([nest, nest]);
      // Listening before the request, so that no span line can be missed.
      const relayServer = spanFrom(
        relay,
        (s) => s.kind === SpanKind.SERVER && s.name === 'relay',
        'relay SERVER',
      );
      const relayClient = spanFrom(
        relay,
        (s) => s.kind === SpanKind.CLIENT && s.name === '{"cmd":"sum"}',
        'relay CLIENT',
      );
      const mathServer = spanFrom(
        math,
        (s) => s.kind === SpanKind.SERVER && s.name === '{"cmd":"sum"}',
        'math SERVER',
      );
      const proxy = new KableClientProxy({ host: '127.0.0.1', discovery, target: 'relay', timeout: 10_000 });
      clients.push(proxy);
      await proxy.whenServed('relay', { timeout: 10_000 });
      // The relay's own client joins on its first call and waits (bounded by pickTimeout) for math.
      const root = trace.getTracer('test').startSpan('caller');
      const sum = await context.with(trace.setSpan(context.active(), root), () =>
        firstValueFrom(proxy.send<number>('relay', [1, 2, 3])),
      );
      root.end();
      expect(sum).toBe(6);

      const caller = otel.spans
        .getFinishedSpans()
        .map(spanLine)
        .find((s) => s.kind === SpanKind.CLIENT && s.name === 'relay');
      expect(caller).toBeDefined();
      const [second, third, fourth] = await Promise.all([relayServer, relayClient, mathServer]);
      const traceId = root.spanContext().traceId;
      for (const span of [caller!, second, third, fourth]) expect(span.traceId).toBe(traceId);
      expect(caller!.parentSpanId).toBe(root.spanContext().spanId);
      expect(second.parentSpanId).toBe(caller!.spanId);
      expect(third.parentSpanId).toBe(second.spanId);
      expect(fourth.parentSpanId).toBe(third.spanId);
      expect(second.attributes).toMatchObject({ 'rpc.method': 'relay', 'kable.node.id': 'relay' });
      expect(third.attributes).toMatchObject({ 'rpc.method': '{"cmd":"sum"}', 'kable.node.id': 'math' });
      expect(fourth.attributes).toMatchObject({ 'kable.caller.id': 'kable-client', 'kable.node.id': 'math' });
    },
  );
});
