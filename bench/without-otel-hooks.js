// Module resolve hook for the bench's "without OpenTelemetry" processes: every @opentelemetry/* package
// is "not installed", as in an application that never added it. Registered by bench/otel-variant.ts.
export async function resolve(specifier, context, nextResolve) {
  if (specifier.startsWith('@opentelemetry/')) {
    const error = new Error(`Cannot find package '${specifier}' (hidden by the bench)`);
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return nextResolve(specifier, context);
}
