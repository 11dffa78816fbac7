// Shared-secret authentication: the accepting side sends a random nonce, the connecting side
// answers with HMAC-SHA256(secret, nonce || role || nodeId). Nothing else is read before that.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const NONCE_BYTES = 32;

export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(NONCE_BYTES));
}

export function computeMac(secret: Uint8Array, nonce: Uint8Array, role: number, nodeId: string): Uint8Array {
  const h = createHmac('sha256', secret);
  h.update(nonce);
  h.update(Uint8Array.of(role & 0xff));
  h.update(nodeId, 'utf8');
  return new Uint8Array(h.digest());
}

export function verifyMac(secret: Uint8Array, nonce: Uint8Array, role: number, nodeId: string, mac: Uint8Array): boolean {
  const want = computeMac(secret, nonce, role, nodeId);
  return mac.length === want.length && timingSafeEqual(want, mac);
}

export function generateSecret(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The cluster secret, from (in order) an explicit value, a file, HYBRIDPS_SECRET or
 * HYBRIDPS_SECRET_FILE. Throws when none is set: running without authentication is not an option.
 */
export function loadSecret(opts: { secret?: string; secretFile?: string } = {}): Uint8Array {
  const file = opts.secretFile ?? process.env.HYBRIDPS_SECRET_FILE;
  const value = opts.secret ?? (file ? readFileSync(file, 'utf8').trim() : process.env.HYBRIDPS_SECRET);
  if (!value) {
    throw new Error('no cluster secret: pass --secret-file FILE, or set HYBRIDPS_SECRET or HYBRIDPS_SECRET_FILE (`hybridps launch` makes one for a local run)');
  }
  if (value.length < 16) throw new Error('the cluster secret is shorter than 16 characters');
  return new TextEncoder().encode(value);
}
