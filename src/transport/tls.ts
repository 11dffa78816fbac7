// TLS credentials for every link (docs/operations.md, "Encrypted links"): this node's certificate
// and key and the cluster's CA, read from files once at start-up and checked there (a wrong file
// fails the start with its name, not every handshake later). Both ends of a link verify the other
// (mutual TLS): the chain up to the cluster CA, the validity dates, and the cluster name. The name
// checked is one cluster-wide DNS name in each certificate's subjectAltName (default `hybridps`),
// not the address dialled: pods and test namespaces get addresses nobody knows when certificates
// are made, and one certificate in one Kubernetes Secret then serves every pod. Who a peer is
// within the cluster stays the HMAC hello's job, on top of TLS.
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const DEFAULT_TLS_NAME = 'hybridps';

/** Where the credentials are (flags, or HYBRIDPS_TLS_CERT / _KEY / _CA / _NAME). */
export interface TlsFiles { tlsCert?: string; tlsKey?: string; tlsCa?: string; tlsName?: string }

export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** The cluster-wide name every certificate carries in its subjectAltName. */
  name: string;
  /** Where the files were, for messages. */
  certFile: string;
}

export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

/**
 * The credentials named by flags or the environment; undefined when none of the three files is
 * named (links are plain, as before). Naming some but not all, an unreadable file, a key that does
 * not match, a certificate not from the CA, expired, or without the name: TlsConfigError.
 */
export function loadTls(flags: TlsFiles = {}, env: NodeJS.ProcessEnv = process.env): TlsCredentials | undefined {
  const files = {
    cert: flags.tlsCert ?? env.HYBRIDPS_TLS_CERT, key: flags.tlsKey ?? env.HYBRIDPS_TLS_KEY, ca: flags.tlsCa ?? env.HYBRIDPS_TLS_CA,
  };
  const name = flags.tlsName ?? env.HYBRIDPS_TLS_NAME ?? DEFAULT_TLS_NAME;
  const missing = Object.entries(files).filter(([, v]) => !v).map(([k]) => `--tls-${k}`);
  if (missing.length === 3) return undefined;
  if (missing.length) throw new TlsConfigError(`TLS needs all of --tls-cert, --tls-key and --tls-ca (or HYBRIDPS_TLS_CERT/_KEY/_CA); missing ${missing.join(', ')}`);
  const read = (what: string, file: string) => {
    try { return readFileSync(file); } catch (e) { throw new TlsConfigError(`cannot read the TLS ${what} ${file}: ${(e as Error).message}`); }
  };
  const creds: TlsCredentials = { cert: read('certificate', files.cert!), key: read('key', files.key!), ca: read('CA', files.ca!), name, certFile: files.cert! };
  const problem = credentialsProblem(creds, files.key!, files.ca!);
  if (problem) throw new TlsConfigError(problem);
  return creds;
}

/** Why these credentials cannot work (checked once, so a bad file names itself), or null. */
function credentialsProblem(c: TlsCredentials, keyFile: string, caFile: string): string | null {
  let cert: X509Certificate, cas: X509Certificate[];
  try { cert = new X509Certificate(c.cert); } catch (e) { return `${c.certFile} is not a PEM certificate: ${(e as Error).message}`; }
  try { cas = splitPem(c.ca).map((p) => new X509Certificate(p)); } catch (e) { return `${caFile} is not a PEM CA certificate: ${(e as Error).message}`; }
  if (!cas.length) return `${caFile} holds no certificate`;
  try {
    if (!cert.checkPrivateKey(createPrivateKey(c.key))) return `${keyFile} is not the key of ${c.certFile}`;
  } catch (e) { return `${keyFile} is not a PEM private key: ${(e as Error).message}`; }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now) return `${c.certFile} expired on ${cert.validTo}: make a new one (docs/operations.md, "Encrypted links")`;
  if (Date.parse(cert.validFrom) > now) return `${c.certFile} is not valid before ${cert.validFrom} (is this machine's clock right?)`;
  if (!cas.some((ca) => cert.verify(ca.publicKey))) return `${c.certFile} is not signed by the CA in ${caFile}: peers would refuse it`;
  if (!cert.checkHost(c.name, { wildcards: false })) return `${c.certFile} does not carry the cluster name "${c.name}" in its subjectAltName (DNS:${c.name}); peers would refuse it (or set --tls-name)`;
  return null;
}

function splitPem(pem: Buffer): string[] {
  return pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** A listener's TLS server options: a client certificate from the CA is required, or the handshake fails. */
export function listenerTlsOptions(t: TlsCredentials, handshakeTimeoutMs: number) {
  return { cert: t.cert, key: t.key, ca: t.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' as const, handshakeTimeout: handshakeTimeoutMs };
}

/** A dialler's TLS options: its own certificate, the CA, and the cluster name instead of the address. */
export function dialTlsOptions(t: TlsCredentials) {
  return {
    cert: t.cert, key: t.key, ca: t.ca, minVersion: 'TLSv1.2' as const, servername: t.name, rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(t.name, cert),
  };
}

/** The listener's side of the name check, on an accepted (chain-verified) socket: null, or why not. */
export function peerNameProblem(t: TlsCredentials, socket: TLSSocket): string | null {
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw) return 'the peer sent no certificate';
  const err = checkServerIdentity(t.name, cert);
  return err ? `the peer's certificate does not carry the cluster name: ${err.message}` : null;
}

/** With credentials every dial is TLS (a ws:// address, as TF_CONFIG gives, is dialled as wss://). */
export function linkUrl(url: string, t: TlsCredentials | undefined): string {
  if (t) return url.replace(/^ws:\/\//, 'wss://');
  return url;
}

/** The plain-link warning every role logs once at start when it has no credentials. */
export const UNENCRYPTED_WARNING = 'links are unencrypted (no --tls-cert/--tls-key/--tls-ca): anyone on the network path can read the model and alter pushes; see docs/operations.md, "Encrypted links"';
