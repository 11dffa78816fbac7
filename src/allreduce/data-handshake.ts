// The ring data stream's opening (docs/wire.md, "Ring data stream"): an HTTP upgrade to
// `hybridps-ring-data` on the ring's own listener port, then a mutual HMAC challenge with the
// cluster secret, bound to both nonces, the direction and the ring epoch. The receiving rank
// dials (it owns the socket, so it can read into its own preallocated memory) and proves it is
// the sender's right neighbour; the sender proves it is the receiver's left one. Nothing but
// these few small messages is read before both sides are authenticated.
import type { Socket } from 'node:net';
import { computeMac, newNonce, NONCE_BYTES } from '../transport/auth.ts';
import { timingSafeEqual } from 'node:crypto';
import { Role } from '../wire/codec.ts';

export const DATA_PROTOCOL = 'hybridps-ring-data';
const CHALLENGE_MAGIC = 0x43525048; // 'HPRC'
const HELLO_MAGIC = 0x48525048; // 'HPRH'
const WELCOME_MAGIC = 0x57525048; // 'HPRW'
const MAX_ID_BYTES = 256;
const MAX_HTTP_BYTES = 4096;
const CHALLENGE_BYTES = 4 + NONCE_BYTES;
const HELLO_FIXED = 4 + 8 + NONCE_BYTES + 32 + 4;

/** The data stream could not be opened: refused, unauthenticated, or not a hybridps peer. */
export class DataHandshakeError extends Error {
  override name = 'DataHandshakeError';
}

/** What each MAC covers: both nonces (the verifier's first), which way data flows, and the ring. */
function macInput(verifierNonce: Uint8Array, otherNonce: Uint8Array, direction: 'receiver' | 'sender', ringEpoch: number): Uint8Array {
  const tag = new TextEncoder().encode(`${DATA_PROTOCOL}/${direction}/${ringEpoch}`);
  const out = new Uint8Array(verifierNonce.length + otherNonce.length + tag.length);
  out.set(verifierNonce, 0);
  out.set(otherNonce, verifierNonce.length);
  out.set(tag, verifierNonce.length + otherNonce.length);
  return out;
}

const sameMac = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);

export function upgradeRequest(host: string): string {
  return `GET /${DATA_PROTOCOL} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: ${DATA_PROTOCOL}\r\n\r\n`;
}

/**
 * The dialling (receiving) side, fed the bytes the socket delivers. `feed` returns bytes to
 * write, and once authenticated `done` with whatever followed the welcome (the first segments).
 */
export class ClientHandshake {
  private acc = new Uint8Array(0);
  private phase: 'http' | 'challenge' | 'welcome' = 'http';
  private readonly nonce = newNonce();
  private serverNonce!: Uint8Array;

  constructor(private readonly o: { secret: Uint8Array; nodeId: string; ringEpoch: number; expectPeer: string; url: string }) {}

  feed(bytes: Uint8Array): { send?: Uint8Array; done?: true; rest?: Uint8Array } {
    const acc = new Uint8Array(this.acc.length + bytes.length);
    acc.set(this.acc, 0);
    acc.set(bytes, this.acc.length);
    this.acc = acc;
    const fail = (why: string) => new DataHandshakeError(`ring data stream to ${this.o.expectPeer} at ${this.o.url}: ${why}`);
    if (this.phase === 'http') {
      const end = Buffer.from(this.acc.buffer, this.acc.byteOffset, this.acc.length).indexOf('\r\n\r\n');
      if (end < 0) { if (this.acc.length > MAX_HTTP_BYTES) throw fail('no end to the HTTP response'); return {}; }
      const status = new TextDecoder().decode(this.acc.subarray(0, end)).split('\r\n')[0]!;
      if (!/^HTTP\/1\.1 101 /.test(status)) throw fail(`upgrade refused: ${status} (is the peer a hybridps worker of this version?)`);
      this.acc = this.acc.subarray(end + 4);
      this.phase = 'challenge';
    }
    if (this.phase === 'challenge') {
      if (this.acc.length < CHALLENGE_BYTES) return {};
      if (u32(this.acc, 0) !== CHALLENGE_MAGIC) throw fail('bad challenge');
      this.serverNonce = this.acc.slice(4, CHALLENGE_BYTES);
      this.acc = this.acc.subarray(CHALLENGE_BYTES);
      this.phase = 'welcome';
      const id = new TextEncoder().encode(this.o.nodeId);
      const hello = new Uint8Array(HELLO_FIXED + id.length);
      const dv = new DataView(hello.buffer);
      dv.setUint32(0, HELLO_MAGIC, true);
      dv.setUint32(4, this.o.ringEpoch >>> 0, true);
      dv.setUint32(8, Math.floor(this.o.ringEpoch / 2 ** 32), true);
      hello.set(this.nonce, 12);
      hello.set(computeMac(this.o.secret, macInput(this.serverNonce, this.nonce, 'receiver', this.o.ringEpoch), Role.Worker, this.o.nodeId), 12 + NONCE_BYTES);
      dv.setUint32(HELLO_FIXED - 4, id.length, true);
      hello.set(id, HELLO_FIXED);
      return { send: hello, ...this.feedWelcome(fail) };
    }
    return this.feedWelcome(fail);
  }

  private feedWelcome(fail: (why: string) => Error): { done?: true; rest?: Uint8Array } {
    if (this.acc.length < 12) return {};
    if (u32(this.acc, 0) !== WELCOME_MAGIC) throw fail('bad welcome');
    const status = u32(this.acc, 4), len = u32(this.acc, 8);
    if (len > 4096) throw fail('welcome too long');
    if (this.acc.length < 12 + len) return {};
    const body = this.acc.subarray(12, 12 + len);
    if (status !== 0) throw fail(`refused: ${new TextDecoder().decode(body)}`);
    const want = computeMac(this.o.secret, macInput(this.nonce, this.serverNonce, 'sender', this.o.ringEpoch), Role.Worker, this.o.expectPeer);
    if (!sameMac(body, want)) throw fail('the peer failed to authenticate (HMAC mismatch: another cluster secret, or not the left neighbour)');
    return { done: true, rest: this.acc.subarray(12 + len) };
  }
}

function welcome(status: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, WELCOME_MAGIC, true);
  dv.setUint32(4, status, true);
  dv.setUint32(8, body.length, true);
  out.set(body, 12);
  return out;
}

export interface AcceptOptions {
  secret: Uint8Array;
  nodeId: string;
  /** Whether this authenticated peer may have a stream for that ring here: null, or why not. */
  admit: (peerId: string, ringEpoch: number) => string | null;
}

/**
 * The listening (sending) side, on a socket the listener handed over after the upgrade request.
 * Resolves with the authenticated peer; on any failure it answers the reason (when the peer
 * authenticated) or just closes, and rejects.
 */
export function acceptDataStream(socket: Socket, head: Uint8Array, o: AcceptOptions): Promise<{ peerId: string; ringEpoch: number }> {
  return new Promise((resolve, reject) => {
    const nonce = newNonce();
    let acc: Uint8Array = new Uint8Array(head);
    let settled = false;
    const onClose = () => finish(new DataHandshakeError('ring data stream closed during the handshake'));
    const finish = (err: Error | null, out?: { peerId: string; ringEpoch: number }) => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      if (err) { socket.end(); setTimeout(() => socket.destroy(), 1000).unref(); reject(err); } else resolve(out!);
    };
    const onData = (chunk: Buffer) => {
      try { onBytes(chunk); } catch (e) { finish(new DataHandshakeError(`ring data stream: ${(e as Error).message}`)); } // never crash on a peer's bytes
    };
    const onBytes = (chunk: Buffer) => {
      const next = new Uint8Array(acc.length + chunk.length);
      next.set(acc, 0);
      next.set(chunk, acc.length);
      acc = next;
      if (acc.length < HELLO_FIXED) return;
      if (u32(acc, 0) !== HELLO_MAGIC) return finish(new DataHandshakeError('ring data stream: first message is not a hello'));
      const idLen = u32(acc, HELLO_FIXED - 4);
      if (idLen === 0 || idLen > MAX_ID_BYTES) return finish(new DataHandshakeError(`ring data stream: node id of ${idLen} bytes`));
      if (acc.length < HELLO_FIXED + idLen) return;
      if (acc.length > HELLO_FIXED + idLen) return finish(new DataHandshakeError('ring data stream: bytes after the hello (the receiving side sends nothing else)'));
      const ringEpoch = u32(acc, 4) + u32(acc, 8) * 2 ** 32;
      const peerNonce = acc.slice(12, 12 + NONCE_BYTES);
      const mac = acc.subarray(12 + NONCE_BYTES, 12 + NONCE_BYTES + 32);
      const peerId = new TextDecoder().decode(acc.subarray(HELLO_FIXED));
      const want = computeMac(o.secret, macInput(nonce, peerNonce, 'receiver', ringEpoch), Role.Worker, peerId);
      if (!sameMac(mac, want)) return finish(new DataHandshakeError(`ring data stream from ${peerId}: bad credentials (HMAC mismatch)`));
      const refusal = o.admit(peerId, ringEpoch);
      if (refusal) {
        socket.write(welcome(1, new TextEncoder().encode(refusal)));
        return finish(new DataHandshakeError(`ring data stream from ${peerId} (ring epoch ${ringEpoch}) refused: ${refusal}`));
      }
      socket.write(welcome(0, computeMac(o.secret, macInput(peerNonce, nonce, 'sender', ringEpoch), Role.Worker, o.nodeId)));
      finish(null, { peerId, ringEpoch });
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.setNoDelay(true);
    const challenge = new Uint8Array(CHALLENGE_BYTES);
    new DataView(challenge.buffer).setUint32(0, CHALLENGE_MAGIC, true);
    challenge.set(nonce, 4);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${DATA_PROTOCOL}\r\n\r\n`);
    socket.write(challenge);
    if (acc.length) onData(Buffer.alloc(0));
    socket.resume();
  });
}
