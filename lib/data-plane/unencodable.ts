import { KableDataPlaneError } from './data-plane-errors.js';

/**
 * How deep the codec nests (its default `maxDepth`, which the frame encoder keeps): the value itself is
 * level 1, and anything at level 101 makes it throw, a circular object included.
 */
export const MAX_ENCODED_DEPTH = 100;
/** Most values the search looks at: it bounds the search of a large value, or of one much shared. */
const MAX_VISITS = 100_000;
/** A path longer than this is shortened in messages (a too-deep one has 100 segments). */
const PATH_SHOWN = 6;

/**
 * What in `value` MessagePack cannot encode, as "path: what" (`id: BigInt`, `items[2].owner: circular
 * reference`), or undefined when the search finds nothing. Only called after the encoder threw, so a
 * value that encodes never pays for it. It mirrors what the codec accepts: null, undefined, booleans,
 * numbers, strings, binaries (typed arrays, Buffer), Dates, arrays and objects of those (own enumerable
 * keys, undefined members skipped); a bigint, symbol or function is refused, and so is nesting past
 * MAX_ENCODED_DEPTH.
 */
export function unencodablePart(value: unknown, name = ''): string | undefined {
  const path: Array<string | number> = [];
  const ancestors: object[] = [];
  let visits = 0;
  const search = (current: unknown, depth: number): string | undefined => {
    if (++visits > MAX_VISITS) return undefined;
    if (depth > MAX_ENCODED_DEPTH) return `nested deeper than ${MAX_ENCODED_DEPTH} levels`;
    if (current === null || current === undefined) return undefined;
    const type = typeof current;
    if (type === 'boolean' || type === 'number' || type === 'string') return undefined;
    if (type !== 'object') return Object.prototype.toString.call(current).slice(8, -1);
    const object = current as Record<string, unknown>;
    if (ArrayBuffer.isView(object) || object instanceof Date) return undefined;
    if (ancestors.includes(object)) return 'circular reference';
    ancestors.push(object);
    const keys: Array<string | number> = Array.isArray(object)
      ? Array.from(object.keys())
      : Object.keys(object).filter((key) => object[key] !== undefined);
    for (const key of keys) {
      path.push(key);
      const found = search(object[key], depth + 1);
      if (found !== undefined) return found;
      path.pop();
    }
    ancestors.pop();
    return undefined;
  };
  try {
    const found = search(value, 1);
    return found === undefined ? undefined : `${pathText(name, path)}: ${found}`;
  } catch {
    // A getter that throws: the codec threw the same, and its message says so.
    return undefined;
  }
}

/** `items[2].owner`, `["a key"]` after `name`; "(the value itself)" for the top; long paths shortened. */
function pathText(name: string, path: Array<string | number>): string {
  if (path.length === 0) return name === '' ? '(the value itself)' : name;
  const shown = path.length > PATH_SHOWN ? path.slice(0, PATH_SHOWN) : path;
  let text = name;
  for (const key of shown) {
    if (typeof key === 'number') text += `[${key}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(key)) text += text === '' ? key : `.${key}`;
    else text += `[${JSON.stringify(key)}]`;
  }
  return path.length > PATH_SHOWN ? `${text}... (${path.length} levels)` : text;
}

/**
 * The part of what failed to encode (see `unencodablePart`), searched in each value in turn, its path
 * starting with the value's name; else the codec's own message.
 */
export function whatCannotBeEncoded(cause: unknown, values: Array<[name: string, value: unknown]>): string {
  for (const [name, value] of values) {
    const part = unencodablePart(value, name);
    if (part !== undefined) return part;
  }
  return cause instanceof Error ? cause.message : String(cause);
}

/** A request's or event's data (or metadata) the codec could not encode: nothing was queued. */
export function unencodableError(
  what: 'Request' | 'Event',
  pattern: string,
  data: unknown,
  metadata: unknown,
  cause: unknown,
): KableDataPlaneError {
  const part = whatCannotBeEncoded(cause, [
    ['', data],
    ['metadata', metadata],
  ]);
  return new KableDataPlaneError(
    'KABLE_UNENCODABLE',
    `${what} "${pattern}" not sent: its data cannot be encoded as MessagePack (${part}).`,
    false,
    { cause },
  );
}
