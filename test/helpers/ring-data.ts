// Helpers for the data-stream tests: waiting for a condition, and dialling a ring listener's
// data port as some node with some secret (the real opening, data-handshake.ts).
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { ClientHandshake, upgradeRequest } from '../../src/allreduce/data-handshake.ts';

// A hang guard: the conditions normally hold within milliseconds.
export async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Dials `url`'s data port as `nodeId` with `secret`; resolves with why it was refused, or 'open'. */
export function dialData(url: string, nodeId: string, secret: Uint8Array, ringEpoch: number, expectPeer: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const hs = new ClientHandshake({ secret, nodeId, ringEpoch, expectPeer, url });
    const sock = connect({ host: u.hostname, port: Number(u.port) });
    let done = false;
    const finish = (why: string) => { if (!done) { done = true; sock.destroy(); resolve(why); } };
    sock.on('connect', () => sock.write(upgradeRequest(u.host)));
    sock.on('data', (d: Buffer) => {
      try {
        const r = hs.feed(new Uint8Array(d));
        if (r.send) sock.write(r.send);
        if (r.done) finish('open');
      } catch (e) { finish((e as Error).message); }
    });
    sock.on('error', () => {});
    sock.on('close', () => finish('closed without an answer'));
  });
}
