import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
export { parseKeys } from '../node/keys.js';

/**
 * The envelope of every datagram:
 *
 *   magic 'K' | version | flags | namespace tag (4) | [key id (4) | nonce (12)] | payload | [tag (16)]
 *
 * The namespace tag (4 bytes of its SHA-256) lets a node drop another cluster's adverts cheaply; with a
 * key the payload is AES-256-GCM ciphertext, and the header plus the full namespace are authenticated
 * data, so neither can be altered or replayed into another namespace. The key id (4 bytes of the key's
 * SHA-256) picks the key to open with during a rotation.
 */
const MAGIC = 0x4b;
const VERSION = 1;
const SEALED = 0x01;
const PLAIN_HEADER = 7;
const SEALED_HEADER = PLAIN_HEADER + 4 + 12;
const TAG = 16;

/** Bytes a sealed datagram adds around its payload. */
export const SEAL_OVERHEAD = SEALED_HEADER + TAG;

export type OpenFailure =
  | 'garbage'
  | 'unsupportedVersion'
  | 'otherNamespace'
  | 'unsealed'
  | 'sealedUnexpected'
  | 'unknownKey'
  | 'badSeal';

interface SealKey {
  id: Buffer;
  key: Buffer;
}

function digest4(data: Buffer | string): Buffer {
  return createHash('sha256').update(data).digest().subarray(0, 4);
}

export class AdvertSeal {
  private readonly keys: SealKey[];
  private readonly namespaceTag: Buffer;
  private readonly namespaceBytes: Buffer;

  constructor(namespace: string, keys: Buffer[]) {
    this.keys = keys.map((key) => ({ id: digest4(key), key }));
    this.namespaceBytes = Buffer.from(namespace, 'utf8');
    this.namespaceTag = digest4(`kable-namespace:${namespace}`);
  }

  get sealed(): boolean {
    return this.keys.length > 0;
  }

  seal(payload: Uint8Array): Buffer {
    if (this.keys.length === 0) {
      const out = Buffer.allocUnsafe(PLAIN_HEADER + payload.length);
      this.writeHeader(out, 0);
      out.set(payload, PLAIN_HEADER);
      return out;
    }
    const primary = this.keys[0];
    const out = Buffer.allocUnsafe(SEALED_HEADER + payload.length + TAG);
    this.writeHeader(out, SEALED);
    primary.id.copy(out, PLAIN_HEADER);
    const nonce = randomBytes(12);
    nonce.copy(out, PLAIN_HEADER + 4);
    const cipher = createCipheriv('aes-256-gcm', primary.key, nonce);
    cipher.setAAD(Buffer.concat([out.subarray(0, SEALED_HEADER), this.namespaceBytes]));
    const body = Buffer.concat([cipher.update(payload), cipher.final()]);
    body.copy(out, SEALED_HEADER);
    cipher.getAuthTag().copy(out, SEALED_HEADER + body.length);
    return out;
  }

  /** The payload, or why the datagram is refused. Never throws. */
  open(datagram: Buffer): Buffer | OpenFailure {
    if (datagram.length < PLAIN_HEADER || datagram[0] !== MAGIC) return 'garbage';
    if (datagram[1] !== VERSION) return 'unsupportedVersion';
    if (!datagram.subarray(3, 7).equals(this.namespaceTag)) return 'otherNamespace';
    const isSealed = (datagram[2] & SEALED) !== 0;
    if (this.keys.length === 0) return isSealed ? 'sealedUnexpected' : datagram.subarray(PLAIN_HEADER);
    if (!isSealed) return 'unsealed';
    if (datagram.length < SEALED_HEADER + TAG) return 'garbage';
    const keyId = datagram.subarray(PLAIN_HEADER, PLAIN_HEADER + 4);
    const key = this.keys.find((candidate) => candidate.id.equals(keyId));
    if (key === undefined) return 'unknownKey';
    try {
      const nonce = datagram.subarray(PLAIN_HEADER + 4, SEALED_HEADER);
      const decipher = createDecipheriv('aes-256-gcm', key.key, nonce);
      decipher.setAAD(Buffer.concat([datagram.subarray(0, SEALED_HEADER), this.namespaceBytes]));
      decipher.setAuthTag(datagram.subarray(datagram.length - TAG));
      return Buffer.concat([
        decipher.update(datagram.subarray(SEALED_HEADER, datagram.length - TAG)),
        decipher.final(),
      ]);
    } catch {
      return 'badSeal';
    }
  }

  private writeHeader(out: Buffer, flags: number): void {
    out[0] = MAGIC;
    out[1] = VERSION;
    out[2] = flags;
    this.namespaceTag.copy(out, 3);
  }
}
