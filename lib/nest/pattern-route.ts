/**
 * The route string Nest derives from a message pattern (its `transformPatternToRoute`), computed
 * without sorting or regular expressions for the common shapes: a string, or an object with one string
 * or number value, such as `{ cmd: 'sum' }`. Undefined for anything else: the caller asks Nest then.
 * Both sides must agree on the route, so this is checked against Nest's function in the tests.
 */
export function fastPatternRoute(pattern: unknown): string | undefined {
  if (typeof pattern === 'string') return pattern;
  if (typeof pattern !== 'object' || pattern === null) return undefined;
  const keys = Object.keys(pattern);
  if (keys.length !== 1 || needsEscape(keys[0])) return undefined;
  const key = keys[0];
  const value = (pattern as Record<string, unknown>)[key];
  if (typeof value === 'string' && !needsEscape(value)) return `{"${key}":"${value}"}`;
  if (typeof value === 'number') return `{"${key}":${value}}`;
  return undefined;
}

function needsEscape(text: string): boolean {
  return text.includes('"') || text.includes('\\');
}
