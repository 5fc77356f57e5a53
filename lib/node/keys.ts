import { KableOptionsError } from './errors.js';

/** Parses `key` / `keys` options: each must be exactly 32 bytes, base64. */
export function parseKeys(key: string | undefined, keys: string[] | undefined): Buffer[] {
  if (key !== undefined && keys !== undefined) {
    throw new KableOptionsError('Give either "key" or "keys" (for rotation: [new, ...older]), not both.');
  }
  const list = keys ?? (key === undefined ? [] : [key]);
  if (!Array.isArray(list) || (keys !== undefined && list.length === 0)) {
    throw new KableOptionsError('"keys" must be a non-empty array of base64 keys: [primary, ...older].');
  }
  return list.map((text, i) => {
    const name = keys === undefined ? '"key"' : `"keys[${i}]"`;
    const bytes =
      typeof text === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(text)
        ? Buffer.from(text, 'base64')
        : undefined;
    if (bytes === undefined || bytes.length !== 32) {
      throw new KableOptionsError(
        `${name} must be 32 random bytes in base64 (44 characters); make one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`,
      );
    }
    return bytes;
  });
}
