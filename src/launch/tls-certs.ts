// Throwaway certificates for a local run (`hybridps launch --tls`): a CA made for this run and
// one certificate per role kind (scheduler, server, worker), all carrying the cluster name
// (transport/tls.ts) and 127.0.0.1, written into the run's directory with keys 0600. Node makes
// no X.509 certificates itself; this calls the `openssl` CLI (on nearly every Linux image and in
// the documented container image, and no npm dependency for a GPU box without npm;
// docs/dependencies.md). Tests use the same functions for another CA and an expired certificate.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_TLS_NAME } from '../transport/index.ts';
import { ConfigError } from './exit-codes.ts';

export interface KeyPair { cert: string; key: string }

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], what: string): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      throw new ConfigError('--tls needs the openssl command to make this run\'s certificates, and it is not installed: apt-get install openssl (or dnf/apk install openssl), or make the certificates yourself and pass --tls-cert, --tls-key and --tls-ca (docs/operations.md, "Encrypted links")');
    }
    throw new Error(`openssl could not make ${what}: ${err.stderr?.toString().trim() || err.message}`);
  }
}

/** A self-signed CA in `dir` (ca.crt, ca.key), valid for `days`. */
export function makeCa(dir: string, o: { days?: number; cn?: string } = {}): KeyPair {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pair = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  openssl(['req', '-x509', ...KEY_ARGS, '-keyout', pair.key, '-out', pair.cert, '-days', String(o.days ?? 2),
    '-subj', `/CN=${o.cn ?? 'hybridps throwaway CA'}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], 'the CA');
  chmodSync(pair.key, 0o600);
  return pair;
}

/**
 * A certificate `<base>.crt` / `<base>.key` in `dir` signed by `ca`, for both ends of a link
 * (serverAuth and clientAuth), with the cluster name, localhost and 127.0.0.1 in its
 * subjectAltName. `days` < 0 makes one that has already expired (tests).
 */
export function makeCert(dir: string, ca: KeyPair, base: string, o: { days?: number; name?: string; ips?: string[] } = {}): KeyPair {
  const pair = { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
  const csr = join(dir, `${base}.csr`);
  openssl(['req', '-new', ...KEY_ARGS, '-keyout', pair.key, '-out', csr, '-subj', `/CN=${base}`], `the key of ${base}`);
  chmodSync(pair.key, 0o600);
  const san = [`DNS:${o.name ?? DEFAULT_TLS_NAME}`, 'DNS:localhost', ...['127.0.0.1', ...(o.ips ?? [])].map((ip) => `IP:${ip}`)].join(',');
  const ext = join(dir, `${base}.ext`);
  execFileSync('sh', ['-c', 'umask 077 && cat > "$1"', 'sh', ext], {
    input: `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n`,
  });
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'),
    '-days', String(o.days ?? 2), '-extfile', ext, '-out', pair.cert], `the certificate of ${base}`);
  return pair;
}

export const ROLE_KINDS = ['scheduler', 'server', 'worker'] as const;
export type RoleKind = (typeof ROLE_KINDS)[number];

export interface LocalTls { dir: string; ca: string; roles: Record<RoleKind, KeyPair> }

/** A run's throwaway CA and one certificate per role kind, in `dir` (made 0700). */
export function makeLocalTls(dir: string): LocalTls {
  const ca = makeCa(dir);
  const roles = Object.fromEntries(ROLE_KINDS.map((r) => [r, makeCert(dir, ca, r)])) as Record<RoleKind, KeyPair>;
  return { dir, ca: ca.cert, roles };
}

/** The environment that hands a role kind its credentials (HYBRIDPS_TLS_*, read by transport/tls.ts). */
export function tlsEnv(t: LocalTls, role: RoleKind): NodeJS.ProcessEnv {
  return { HYBRIDPS_TLS_CERT: t.roles[role].cert, HYBRIDPS_TLS_KEY: t.roles[role].key, HYBRIDPS_TLS_CA: t.ca };
}
