// Certificates for the TLS tests, made once per test file in a temporary directory with the same
// openssl calls `launch --tls` uses: the cluster CA and good certificates, and the bad ones a
// peer might hold (another CA, expired, without the cluster name).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, makeCert, type KeyPair } from '../../src/launch/tls-certs.ts';
import { DEFAULT_TLS_NAME, type TlsCredentials } from '../../src/transport/index.ts';

export interface TestPki {
  dir: string;
  ca: KeyPair;
  good: TlsCredentials;
  /** A second good certificate of the same CA (the other end). */
  other: TlsCredentials;
  fromOtherCa: TlsCredentials;
  expired: TlsCredentials;
  wrongName: TlsCredentials;
  /** The files of `good`, for loadTls and child processes. */
  goodFiles: { tlsCert: string; tlsKey: string; tlsCa: string };
  remove(): void;
}

/** Credentials as the transport takes them, read without loadTls's checks (so bad ones can be tried). */
export function credentials(pair: KeyPair, caCert: string, name = DEFAULT_TLS_NAME): TlsCredentials {
  return { cert: readFileSync(pair.cert), key: readFileSync(pair.key), ca: readFileSync(caCert), name, certFile: pair.cert };
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'hybridps-tls-test-'));
  const ca = makeCa(join(dir, 'a'));
  const otherCa = makeCa(join(dir, 'b'), { cn: 'another CA' });
  const good = makeCert(join(dir, 'a'), ca, 'good');
  return {
    dir, ca,
    good: credentials(good, ca.cert),
    other: credentials(makeCert(join(dir, 'a'), ca, 'other'), ca.cert),
    // Its certificate is from another CA; it trusts the cluster's, so only the other end can refuse.
    fromOtherCa: { ...credentials(makeCert(join(dir, 'b'), otherCa, 'stranger'), otherCa.cert), ca: readFileSync(ca.cert) },
    expired: credentials(makeCert(join(dir, 'a'), ca, 'expired', { days: -1 }), ca.cert),
    wrongName: credentials(makeCert(join(dir, 'a'), ca, 'wrong-name', { name: 'not-hybridps' }), ca.cert),
    goodFiles: { tlsCert: good.cert, tlsKey: good.key, tlsCa: ca.cert },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
