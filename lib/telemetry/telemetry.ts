import type { KableInstrumentation } from './hooks.js';

export type { KableInstrumentation, OutboundTrace } from './hooks.js';

/**
 * OpenTelemetry is optional. `@opentelemetry/api` is an optional peer dependency: when it is installed,
 * Kable instruments itself through it (and whatever SDK the application registered receives the spans
 * and metrics); when it is not, nothing here loads and nothing changes.
 *
 * How it loads: the first KableClientProxy or KableServer to start calls `loadTelemetry()`, which
 * `import()`s `@opentelemetry/api` and then `./instrumentation.js` (the only files that import OTel).
 * A dynamic `import()` works the same from an ES module and from a CommonJS build, and it resolves once
 * per process; a missing package only leaves the state "absent". The hot path then reads one variable,
 * `telemetry.active`, and does nothing more when it is undefined.
 *
 * Two copies of the API (the ESM one Kable imports, the CommonJS one a `require`-based app registers its
 * SDK with) share one registry: the API keeps its globals on `globalThis`, so either sees the SDK.
 */
export interface Telemetry {
  /** The instrumentation, once `@opentelemetry/api` loaded; undefined before and without it. */
  active: KableInstrumentation | undefined;
  /** 'idle' before any client or server started; 'absent' when the package is not installed. */
  state: 'idle' | 'loading' | 'absent' | 'active';
}

export const telemetry: Telemetry = { active: undefined, state: 'idle' };

let loading: Promise<void> | undefined;

/**
 * Loads the instrumentation if `@opentelemetry/api` is installed; resolves (never rejects) once decided.
 * Each call also picks up a meter provider registered since the last one.
 */
export function loadTelemetry(): Promise<void> {
  if (telemetry.active !== undefined) {
    telemetry.active.refresh();
    return Promise.resolve();
  }
  loading ??= (async () => {
    telemetry.state = 'loading';
    let api: typeof import('@opentelemetry/api');
    try {
      // The specifier is a variable so that bundlers do not try to include the optional package.
      api = (await import(OTEL_API)) as typeof import('@opentelemetry/api');
    } catch {
      // Not installed (or not loadable): Kable runs uninstrumented, exactly as without OpenTelemetry.
      telemetry.state = 'absent';
      return;
    }
    const { createInstrumentation } = await import('./instrumentation.js');
    telemetry.active = createInstrumentation(api);
    telemetry.state = 'active';
  })();
  return loading;
}

const OTEL_API = '@opentelemetry/api';
