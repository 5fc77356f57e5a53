import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ClusterCertificates {
  ca: string;
  node: { key: string; cert: string };
  /** Signed by another CA: must be refused. */
  stranger: { key: string; cert: string };
  /** That other CA. */
  otherCa: string;
}

/** A throwaway PKI made with the openssl CLI: a cluster CA, one node certificate, one from elsewhere. */
export function makeCertificates(): ClusterCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'kable-pki-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  try {
    for (const name of ['ca', 'other-ca']) {
      ssl(
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${name}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.crt`,
      );
    }
    const issue = (name: string, ca: string) => {
      ssl(
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        `/CN=${name}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
      );
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${ca}.crt`,
        '-CAkey',
        `${ca}.key`,
        '-CAcreateserial',
        '-days',
        '1',
        '-out',
        `${name}.crt`,
      );
    };
    issue('node', 'ca');
    issue('stranger', 'other-ca');
    const read = (file: string) => readFileSync(join(dir, file), 'utf8');
    return {
      ca: read('ca.crt'),
      node: { key: read('node.key'), cert: read('node.crt') },
      stranger: { key: read('stranger.key'), cert: read('stranger.crt') },
      otherCa: read('other-ca.crt'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
