// What the bench's Kable processes have of OpenTelemetry, from KABLE_BENCH_OTEL (set by bench/telemetry.ts):
//   absent  @opentelemetry/* cannot be resolved: Kable loads no instrumentation (the baseline);
//   (unset) the API is installed but no SDK is registered: Kable's spans and metrics are no-ops;
//   sdk     an SDK as production would have it (batching span processor, periodic metric reader) whose
//           exporters discard everything: the cost of instrumentation without the cost of shipping it;
//   sdk-traces, sdk-metrics   only one of the two, to tell which costs what.
// Runs before the server or client starts, which is when Kable loads its instrumentation.
import { register } from 'node:module';

export async function applyOtelVariant(): Promise<void> {
  const variant = process.env.KABLE_BENCH_OTEL;
  if (variant === 'absent') register('./without-otel-hooks.js', import.meta.url);
  if (variant !== 'sdk' && variant !== 'sdk-traces' && variant !== 'sdk-metrics') return;
  const { context, metrics, propagation, trace } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } =
    await import('@opentelemetry/core');
  const { MeterProvider, PeriodicExportingMetricReader, AggregationTemporality } =
    await import('@opentelemetry/sdk-metrics');
  const { BatchSpanProcessor, TracerProvider } = await import('@opentelemetry/sdk-trace');
  const discard = { export: (_items: unknown, done: (result: { code: 0 }) => void) => done({ code: 0 }) };
  if (variant !== 'sdk-metrics')
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  if (variant !== 'sdk-metrics')
    trace.setGlobalTracerProvider(
      new TracerProvider({
        spanProcessors: [
          new BatchSpanProcessor({ exporter: { ...discard, shutdown: () => Promise.resolve() } }),
        ],
      }),
    );
  if (variant !== 'sdk-traces')
    metrics.setGlobalMeterProvider(
      new MeterProvider({
        readers: [
          new PeriodicExportingMetricReader({
            exporter: {
              ...discard,
              forceFlush: () => Promise.resolve(),
              shutdown: () => Promise.resolve(),
              selectAggregationTemporality: () => AggregationTemporality.CUMULATIVE,
            },
            exportIntervalMillis: 5000,
          }),
        ],
      }),
    );
}
