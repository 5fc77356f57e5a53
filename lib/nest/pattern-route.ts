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
  if (keys.length !== 1) return undefined;
  const key = keys[0];
  const value = (pattern as Record<string, unknown>)[key];
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  return knownRoutes.get(key)?.get(value) ?? newRoute(key, value);
}

/**
 * Routes already built, by key then value. A pattern object is usually a new literal per call with the
 * same key and value: reusing the string saves building it, and the same string object, flattened and
 * hashed by its first use, makes the lookups that follow (the router's, the frame writer's) cheaper than
 * a fresh concatenation, which each of them would flatten and hash again.
 * Patterns are caller-chosen (a value may be an id): the cache is cleared when it reaches its cap.
 */
const knownRoutes = new Map<string, Map<string | number, string>>();
let knownCount = 0;
const MAX_KNOWN_ROUTES = 10_000;

function newRoute(key: string, value: string | number): string | undefined {
  if (needsEscape(key)) return undefined;
  let route: string;
  if (typeof value === 'number') route = `{"${key}":${value}}`;
  else if (needsEscape(value)) return undefined;
  else route = `{"${key}":"${value}"}`;
  if (knownCount >= MAX_KNOWN_ROUTES) {
    knownRoutes.clear();
    knownCount = 0;
  }
  let byValue = knownRoutes.get(key);
  if (byValue === undefined) knownRoutes.set(key, (byValue = new Map()));
  byValue.set(value, route);
  knownCount++;
  return route;
}

function needsEscape(text: string): boolean {
  return text.includes('"') || text.includes('\\');
}
