/**
 * The route string Nest derives from a message pattern (its `transformPatternToRoute`), computed
 * without sorting or regular expressions for the common shapes: a string, a number, or an object with
 * one string or number value, such as `{ cmd: 'sum' }`. Anything else goes to `fallback` (Nest's own).
 * Both sides must agree on the route, so this is checked against Nest's function in the tests.
 */
export function patternRoute(pattern: unknown, fallback: (pattern: unknown) => string): string {
  if (typeof pattern === 'string') return pattern;
  if (typeof pattern === 'object' && pattern !== null) {
    const keys = Object.keys(pattern);
    if (keys.length === 1) {
      const key = keys[0];
      const value = (pattern as Record<string, unknown>)[key];
      if (!needsEscape(key)) {
        if (typeof value === 'string' && !needsEscape(value)) return `{"${key}":"${value}"}`;
        if (typeof value === 'number') return `{"${key}":${value}}`;
      }
    }
  }
  return fallback(pattern);
}

function needsEscape(text: string): boolean {
  return text.includes('"') || text.includes('\\');
}
