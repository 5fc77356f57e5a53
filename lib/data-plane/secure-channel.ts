import { createHash, hkdfSync } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import { KableOptionsError } from '../node/errors.js';
import { CONNECTION_DEADLINE_DEFAULTS } from './connection-deadlines.js';

export interface TlsFiles {
  /** PEM private key of this node. */
  key: string | Buffer;
  /** PEM certificate of this node. */
  cert: string | Buffer;
  /** PEM CA certificate(s) that signed the cluster's certificates. */
  ca: string | Buffer | Array<string | Buffer>;
}

export interface SecurityOptions {
  /** Cluster keys, primary first (already parsed: 32 bytes each). */
  keys: Buffer[];
  namespace: string;
  /** Certificate-based mutual TLS instead of the pre-shared key. */
  tls?: TlsFiles;
}

export interface SecureChannel {
  /** `handshakeTimeout`: ms a handshake may take (default CONNECTION_DEADLINE_DEFAULTS'; Node's own is 120 s). */
  createServer?: (onConnection: (socket: net.Socket) => void, handshakeTimeout?: number) => net.Server;
  connect?: (host: string, port: number) => net.Socket;
  /** How this data plane is protected, for logs and the docs' wording (docs/security.md). */
  mode: 'plain' | 'tls-psk' | 'mtls';
}

interface PskEntry {
  identity: string;
  psk: Buffer;
}

/**
 * The data-plane key is derived from the cluster key (HKDF-SHA256, salted per namespace), never the
 * advert key itself; its identity is a short digest, so a server holding several keys (a rotation)
 * picks the one the client used.
 */
function pskOf(key: Buffer, namespace: string): PskEntry {
  const psk = Buffer.from(hkdfSync('sha256', key, `nestjs-kable:${namespace}`, 'data-plane psk', 32));
  const identity = `kable-${createHash('sha256').update(psk).digest('hex').slice(0, 16)}`;
  return { identity, psk };
}

/**
 * TLS 1.3 for the data plane: with a cluster key, a pre-shared key derived from it (Node's
 * `pskCallback`; the default TLS 1.3 suites still run an ephemeral key exchange, so a leaked key does
 * not decrypt recorded traffic); with `tls` files, certificate-based mutual TLS. A peer without the
 * key or a trusted certificate cannot finish the handshake, so no frame of its reaches a handler.
 */
export function secureChannel(options: SecurityOptions): SecureChannel {
  if (options.tls !== undefined) return mutualTls(options.tls);
  if (options.keys.length === 0) return { mode: 'plain' };
  const entries = options.keys.map((key) => pskOf(key, options.namespace));
  const byIdentity = new Map(entries.map((entry) => [entry.identity, entry.psk]));
  const primary = entries[0];
  const common = { minVersion: 'TLSv1.3' as const, maxVersion: 'TLSv1.3' as const };
  return {
    mode: 'tls-psk',
    createServer: (onConnection, handshakeTimeout = CONNECTION_DEADLINE_DEFAULTS.handshakeTimeout) =>
      tls.createServer(
        {
          ...common,
          handshakeTimeout,
          pskCallback: (_socket, identity) => byIdentity.get(identity) ?? null,
        },
        onConnection,
      ),
    connect: (host, port) =>
      tls.connect({
        ...common,
        host,
        port,
        pskCallback: () => ({ psk: primary.psk, identity: primary.identity }),
        // No certificates with a PSK: the key itself authenticates the server.
        checkServerIdentity: () => undefined,
      }),
  };
}

function mutualTls(files: TlsFiles): SecureChannel {
  if (files === null || typeof files !== 'object' || !files.key || !files.cert || !files.ca) {
    throw new KableOptionsError('"tls" needs key, cert and ca (PEM), for mutual TLS on the data plane.');
  }
  const common = { key: files.key, cert: files.cert, ca: files.ca, minVersion: 'TLSv1.3' as const };
  return {
    mode: 'mtls',
    createServer: (onConnection, handshakeTimeout = CONNECTION_DEADLINE_DEFAULTS.handshakeTimeout) =>
      tls.createServer(
        { ...common, handshakeTimeout, requestCert: true, rejectUnauthorized: true },
        onConnection,
      ),
    connect: (host, port) =>
      tls.connect({
        ...common,
        host,
        port,
        rejectUnauthorized: true,
        // Nodes are reached by IP; trust comes from the cluster CA, not from names in certificates.
        checkServerIdentity: () => undefined,
      }),
  };
}
