// Waiting for the scheduler before a role starts. Under an orchestrator every pod starts at once:
// a server or worker may run before the scheduler's pod is scheduled, before its name is in DNS
// (a headless Service publishes it only once the pod has an address), or before it listens. The
// links' own reconnects give up after ~30 s, which an image pull easily exceeds, so a role first
// waits here, up to --startup-wait-s, saying each few seconds what it waits for; then it gives up
// with PeerUnreachableError, whose exit code (200) tells a restart policy to try again.
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { PeerUnreachableError } from './exit-codes.ts';

/** Default wait: long enough for an image pull and a scheduled pod, short enough to notice a typo. */
export const DEFAULT_STARTUP_WAIT_S = 300;

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (u.protocol === 'wss:' ? 443 : 80)) };
}

/** Why one attempt failed, in words, or null when the peer accepted a TCP connection. */
async function attempt(host: string, port: number): Promise<string | null> {
  try {
    await lookup(host);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return `${host} does not resolve (${code ?? (e as Error).message})`;
  }
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (why: string | null) => { s.removeAllListeners(); s.destroy(); resolve(why); };
    s.setTimeout(5_000, () => done(`${host}:${port} did not answer within 5 s`));
    s.once('connect', () => done(null));
    s.once('error', (e: NodeJS.ErrnoException) => done(`${host}:${port}: ${e.code ?? e.message}`));
  });
}

/**
 * Resolves once `url`'s host resolves and accepts a TCP connection; retries with a backoff from
 * 0.25 s to 5 s, logging at most every 5 s; throws PeerUnreachableError after `waitS` seconds.
 */
export async function waitForPeer(url: string, o: { waitS?: number; log?: (line: string) => void } = {}): Promise<void> {
  const { host, port } = hostPort(url);
  const waitMs = (o.waitS ?? DEFAULT_STARTUP_WAIT_S) * 1000, start = Date.now();
  let delay = 250, lastLog = -Infinity, why: string | null = null;
  for (let n = 1; ; n++) {
    why = await attempt(host, port);
    if (why === null) return;
    const waited = Date.now() - start;
    if (waited >= waitMs) throw new PeerUnreachableError(url, waited, why);
    if (Date.now() - lastLog >= 5_000) {
      o.log?.(`waiting for ${url}: ${why} (attempt ${n}, ${Math.round(waited / 1000)} s of ${Math.round(waitMs / 1000)} s)`);
      lastLog = Date.now();
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, waitMs - waited))));
    delay = Math.min(delay * 2, 5_000);
  }
}
