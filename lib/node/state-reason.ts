/**
 * Most UTF-8 bytes of a state reason carried in adverts. Every advert must fit one 1,200-byte datagram,
 * and receivers refuse reasons over 512 characters: a longer reason would make every later advert of
 * the node invalid, and its peers would evict it while it believes all is well. up() checks that the
 * advert fits with a reason this long, so no reason can push it over later.
 */
export const MAX_REASON_BYTES = 200;

const ELLIPSIS = '…';

/**
 * A reason as adverts carry it: reasons are for people reading logs and dashboards, and `stop(String(error))`
 * with a long stack is normal, so a long reason is cut (ending in "…") rather than refused: refusing
 * would throw from the very error paths that report a problem.
 */
export function boundReason(reason: unknown): string | undefined {
  if (reason === undefined) return undefined;
  const text = typeof reason === 'string' ? reason : String(reason);
  if (Buffer.byteLength(text) <= MAX_REASON_BYTES) return text;
  const budget = MAX_REASON_BYTES - Buffer.byteLength(ELLIPSIS);
  let cut = '';
  let bytes = 0;
  // By code point, so that no character is split in half.
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (bytes + size > budget) break;
    cut += char;
    bytes += size;
  }
  return cut + ELLIPSIS;
}
