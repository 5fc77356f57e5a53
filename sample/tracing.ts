// `npm start -- --trace`: each sample service registers an OpenTelemetry SDK that prints every span it
// ends as a JSON line {"span": {...}} on stdout, where sample/start.ts collects them into one tree.
// A real deployment would export to a collector instead (see docs/operations.md, "Tracing and metrics").
import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { SpanKind, context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
  hrTimeToMilliseconds,
  type ExportResult,
} from '@opentelemetry/core';
import { SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { Observable, finalize } from 'rxjs';

export interface PrintedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  durationMs: number;
  error: boolean;
  attributes: Record<string, unknown>;
}

export function startSampleTracing(print: (value: unknown) => void): void {
  const exporter = {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
      for (const span of spans) {
        const printed: PrintedSpan = {
          traceId: span.spanContext().traceId,
          spanId: span.spanContext().spanId,
          parentSpanId: span.parentSpanContext?.spanId,
          name: span.name,
          kind: span.kind,
          durationMs: hrTimeToMilliseconds(span.duration),
          error: span.status.code === 2,
          attributes: { ...span.attributes },
        };
        print({ span: printed });
      }
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  trace.setGlobalTracerProvider(
    new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
  );
}

/**
 * The gateway's HTTP side: a span per HTTP request, active while the controller runs, as an HTTP
 * instrumentation would make it, so that Kable's CLIENT spans hang under it.
 */
export class HttpSpanInterceptor implements NestInterceptor {
  intercept(execution: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = execution.switchToHttp().getRequest<{ method: string; path: string }>();
    const span = trace.getTracer('sample-gateway').startSpan(`${request.method} ${request.path}`, {
      kind: SpanKind.SERVER,
    });
    const active = trace.setSpan(context.active(), span);
    return new Observable((subscriber) =>
      context.with(active, () =>
        next
          .handle()
          .pipe(finalize(() => span.end()))
          .subscribe(subscriber),
      ),
    );
  }
}
