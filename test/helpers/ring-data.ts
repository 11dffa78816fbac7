// Helpers for the data-stream tests: waiting for a condition, dialling a ring listener's data
// port as some node with some secret (the real opening, data-handshake.ts), and checking every
// rank's result against the float64 reference.
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { ClientHandshake, upgradeRequest } from '../../src/allreduce/data-handshake.ts';
import { f16ErrorBound } from '../../src/allreduce/index.ts';

// A hang guard: the conditions normally hold within milliseconds.
export async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Opens the TCP (or TLS) connection a data-port dial runs over, and names the event that says it is up. */
export type DataSocketOpener = (where: { host: string; port: number }) => { sock: Socket; ready: 'connect' | 'secureConnect' };
const plainSocket: DataSocketOpener = (where) => ({ sock: connect(where), ready: 'connect' });

/**
 * Dials `url`'s data port as `nodeId` with `secret` (over `open`'s socket: plain TCP unless given);
 * resolves with why it was refused (the socket error's message, if any), or 'open'.
 */
export function dialData(url: string, nodeId: string, secret: Uint8Array, ringEpoch: number, expectPeer: string, open: DataSocketOpener = plainSocket): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const hs = new ClientHandshake({ secret, nodeId, ringEpoch, expectPeer, url });
    const { sock, ready } = open({ host: u.hostname, port: Number(u.port) });
    let done = false, error = '';
    const finish = (why: string) => { if (!done) { done = true; sock.destroy(); resolve(why); } };
    sock.once(ready, () => sock.write(upgradeRequest(u.host)));
    sock.on('data', (d: Buffer) => {
      try {
        const r = hs.feed(new Uint8Array(d));
        if (r.send) sock.write(r.send);
        if (r.done) finish('open');
      } catch (e) { finish((e as Error).message); }
    });
    sock.on('error', (e: Error) => { error = e.message; });
    sock.on('close', () => finish(error || 'closed without an answer'));
  });
}

/**
 * Every rank's buffer holds the same bits, and they equal the float64 sum (or mean) of the inputs
 * within the f32 rounding of W additions (or the documented f16 bound).
 */
export function checkAllreduce(what: string, inputs: Float32Array[], bufs: Float32Array[], op: 'sum' | 'mean', f16: boolean): void {
  const w = inputs.length, n = inputs[0]!.length;
  for (const b of bufs) assert.ok(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(bufs[0]!.buffer, bufs[0]!.byteOffset, bufs[0]!.byteLength)), `${what}: ranks differ`);
  for (let i = 0; i < n; i++) {
    let sum = 0, sumAbs = 0;
    for (const x of inputs) { sum += x[i]!; sumAbs += Math.abs(x[i]!); }
    const want = op === 'mean' ? sum / w : sum;
    const tol = f16 ? f16ErrorBound(w, sumAbs, op) : (w + 1) * 2 ** -24 * sumAbs + 1e-30;
    if (!(Math.abs(bufs[0]![i]! - want) <= tol)) assert.unreachable(`${what}: element ${i}: ${bufs[0]![i]} vs ${want}, tolerance ${tol}`);
  }
}
