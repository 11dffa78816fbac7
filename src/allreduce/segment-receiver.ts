// The receiving end of the ring's data stream from the left neighbour. This rank dials (after the
// HMAC handshake, data-handshake.ts), so it owns the socket and reads with `onread` straight into
// one buffer it allocated at the start: no buffer per frame, nothing for the GC in steady state
// (with `ws` every frame was a fresh buffer: two full GCs per 64 MiB op, bench/RESULTS.md). Each
// read is parsed in place: a header (checked in full: segment-header.ts, then by the op it names)
// before any payload byte touches that op's buffer; payload values are added or copied from the
// receive buffer into the op's buffer while they are still in cache.
//
// The stream is in order and ops are issued in the same order everywhere, so a segment for an op
// this rank has not started yet is simply not read on: the socket pauses (TCP backpressure) until
// the op starts. Anything that does not fit closes the stream and breaks the ring.
import type { Socket } from 'node:net';
import type { TlsCredentials } from '../transport/index.ts';
import { connectDataSocket } from './data-socket.ts';
import { f16ToF32 } from '../wire/f16.ts';
import { ClientHandshake, upgradeRequest } from './data-handshake.ts';
import { SimdAdder } from './simd-add.ts';
import { addInto } from './local-math.ts';
import { FLAG_F16, HEADER_BYTES, payloadBytes, readHeader, type SegmentHeader } from './segment-header.ts';

/** What the receiver hands a checked segment's values to (RingOp, ExchangeOp). */
export interface SegmentTarget {
  /** Checks the header against what the op expects next; throws AllreduceProtocolError. */
  check(h: SegmentHeader, from: string): void;
  /** The next `n` values of the segment last checked, at src[from..from+n); `adder` adds them fastest. */
  take(src: Float32Array, from: number, n: number, adder: SimdAdder): void;
  /** The segment last checked is complete. */
  segmentDone(): void;
}

export interface SegmentReceiverOptions {
  /** The left neighbour's ring listener (ws://host:port) and node id. */
  url: string;
  peer: string;
  nodeId: string;
  secret: Uint8Array;
  /** TLS credentials: the stream is TLS (data-socket.ts). */
  tls?: TlsCredentials;
  ringEpoch: number;
  connectTimeoutMs: number;
  /** Receive buffer (default 1 MiB: reads are parsed while they are in cache). */
  bufferBytes?: number;
  /** The op a checked header names: null when it has not started here yet (reading waits); throws when it cannot be. */
  lookup: (h: SegmentHeader) => SegmentTarget | null;
  onBytes: (payloadBytes: number) => void;
  onBroken: (why: string) => void;
}

export const DEFAULT_RECEIVE_BUFFER_BYTES = 1 << 20;

export class SegmentReceiver {
  private socket: Socket | null = null;
  private closedByUs = false;
  private handshake: ClientHandshake | null = null;
  private readonly buf: Uint8Array;
  /** Owns buf (in WASM memory) and adds from it with SIMD. */
  private readonly adder: SimdAdder;
  private readonly words: Uint32Array;
  private readonly f32: Float32Array;
  private readonly u16: Uint16Array;
  private readonly scratch: Float32Array<ArrayBuffer>;
  /** Views of buf from offset 0..HEADER_BYTES: where the next read goes, made once. */
  private readonly views: Uint8Array[] = [];
  /**
   * Where the next read goes while more than a header is pending (only while waiting for an op):
   * Node asks for the next buffer right after each read, and an empty one (a full buf) would fail
   * the read after resume (ENOBUFS closes the socket). Copied into buf at the pending end.
   */
  private readonly spare = new Uint8Array(64 << 10);
  /** Bytes at the front of buf not parsed yet (a partial header or value; more while waiting for an op). */
  private fill = 0;
  private readonly hdr: SegmentHeader = { ringEpoch: 0, opId: 0, step: 0, flags: 0, segment: 0, offset: 0, count: 0 };
  private cur: SegmentTarget | null = null;
  private remaining = 0;
  private valuesLeft = 0;
  private f16 = false;
  /** A header names an op not started here: reading stops until opStarted(). */
  private waiting = false;

  constructor(private readonly o: SegmentReceiverOptions) {
    const bytes = Math.max(64 << 10, o.bufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES) & ~3;
    this.adder = new SimdAdder(bytes, addInto);
    this.buf = this.adder.buffer;
    this.words = new Uint32Array(this.buf.buffer, 0, bytes / 4);
    this.f32 = new Float32Array(this.buf.buffer, 0, bytes / 4);
    this.u16 = new Uint16Array(this.buf.buffer, 0, bytes / 2);
    this.scratch = new Float32Array(bytes / 2);
    for (let i = 0; i <= HEADER_BYTES; i++) this.views.push(this.buf.subarray(i));
    void this.connect();
  }

  /** An op started here: if reading waits for it, go on. */
  opStarted(): void {
    if (!this.waiting || !this.socket) return;
    this.waiting = false;
    this.parse();
    if (!this.waiting) this.socket.resume();
  }

  close(): void {
    this.closedByUs = true;
    this.socket?.destroy();
  }

  private async connect(): Promise<void> {
    const deadline = performance.now() + this.o.connectTimeoutMs;
    let lastErr = '';
    for (let i = 0; !this.closedByUs && performance.now() < deadline; i++) {
      try {
        await this.attempt(deadline);
        return;
      } catch (e) {
        lastErr = (e as Error).message;
        await new Promise((r) => setTimeout(r, Math.min(500, 10 * 2 ** i)));
      }
    }
    if (!this.closedByUs) this.o.onBroken(`cannot open the data stream from left neighbour ${this.o.peer} at ${this.o.url} within ${this.o.connectTimeoutMs} ms: ${lastErr || 'no attempt made'}`);
  }

  /** One dial: resolves once authenticated (the socket then stays ours), rejects otherwise. */
  private attempt(deadline: number): Promise<void> {
    const u = new URL(this.o.url);
    return new Promise((resolve, reject) => {
      let open = false;
      const fail = (e: Error) => { if (open) return; clearTimeout(timer); socket.destroy(); reject(e); };
      const opened = () => { open = true; clearTimeout(timer); resolve(); };
      this.handshake = new ClientHandshake({ secret: this.o.secret, nodeId: this.o.nodeId, ringEpoch: this.o.ringEpoch, expectPeer: this.o.peer, url: this.o.url });
      this.fill = 0;
      const socket: Socket = connectDataSocket(u, this.o.tls, {
        buffer: () => this.nextReadBuffer(), callback: (n: number, landed: Uint8Array): boolean => this.onRead(n, landed, socket, opened, fail),
      }, () => socket.write(upgradeRequest(u.host)));
      const timer = setTimeout(() => fail(new Error('handshake timed out')), Math.max(100, deadline - performance.now()));
      socket.on('error', (e: Error) => fail(e));
      socket.on('close', () => {
        if (!open) return fail(new Error('closed during the handshake'));
        if (!this.closedByUs) this.o.onBroken(`data stream from left neighbour ${this.o.peer} closed`);
      });
    });
  }

  private nextReadBuffer(): Uint8Array {
    return this.fill < this.views.length ? this.views[this.fill]! : this.spare;
  }

  private onRead(n: number, landed: Uint8Array, socket: Socket, opened: () => void, refused: (e: Error) => void): boolean {
    if (this.closedByUs) { socket.destroy(); return false; } // closed, or the ring moved on during the handshake
    if (this.handshake) {
      let r;
      try { r = this.handshake.feed(landed.subarray(0, n)); } catch (e) {
        refused(e as Error);
        return false;
      }
      if (r.send) socket.write(r.send);
      if (!r.done) return true;
      this.handshake = null;
      this.buf.set(r.rest!, 0);
      this.fill = r.rest!.length;
      this.socket = socket;
      opened();
    } else {
      // Node asked for this read's buffer before the last parse: after opStarted() consumed
      // pending bytes the read may have landed further up. Move it down to the pending end.
      // The spare: see its comment (a parse ran since, so fill is small again).
      const at = landed.byteOffset;
      if (landed.buffer === this.spare.buffer) this.buf.set(this.spare.subarray(0, n), this.fill);
      else if (at !== this.fill) this.buf.copyWithin(this.fill, at, at + n);
      this.fill += n;
    }
    try {
      this.parse();
    } catch (e) {
      // A bug, not the peer's bytes (those are refused in parse): break the ring with the cause.
      this.broken(`internal error while applying a segment: ${(e as Error).stack ?? e}`);
      return false;
    }
    return !this.waiting; // false pauses the socket until opStarted()
  }

  private broken(why: string): void {
    this.closedByUs = true; // nothing more is read; the ring reports why
    this.socket?.destroy();
    this.o.onBroken(`segment from left neighbour ${this.o.peer} refused: ${why}`);
  }

  /** Consumes whole headers and whole values from buf[0..fill); keeps the rest at the front. */
  private parse(): void {
    const end = this.fill;
    let pos = 0;
    while (!this.closedByUs) {
      if (!this.cur) {
        if (end - pos < HEADER_BYTES) break;
        const why = readHeader(this.words, pos >> 2, this.hdr);
        if (why) return this.broken(why);
        let target: SegmentTarget | null;
        try {
          target = this.o.lookup(this.hdr);
          target?.check(this.hdr, this.o.peer);
        } catch (e) { return this.broken((e as Error).message); }
        if (!target) { this.waiting = true; break; }
        pos += HEADER_BYTES;
        this.cur = target;
        this.f16 = (this.hdr.flags & FLAG_F16) !== 0;
        this.remaining = payloadBytes(this.hdr.count, this.f16);
        this.valuesLeft = this.hdr.count;
        continue;
      }
      let take = Math.min(end - pos, this.remaining);
      if (take < this.remaining) take &= ~3; // whole 4-byte units: the next read keeps alignment
      if (take === 0) break;
      if (this.f16) {
        const k = Math.min(take >> 1, this.valuesLeft), at = pos >> 1;
        f16ToF32(this.u16.subarray(at, at + k), this.scratch); // f16 only: a view per read
        this.cur.take(this.scratch, 0, k, this.adder);
        this.valuesLeft -= k;
      } else {
        this.cur.take(this.f32, pos >> 2, take >> 2, this.adder);
        this.valuesLeft -= take >> 2;
      }
      this.o.onBytes(take);
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0) {
        const done = this.cur;
        this.cur = null;
        done.segmentDone();
      }
    }
    if (pos > 0 && pos < end) this.buf.copyWithin(0, pos, end);
    this.fill = end - pos;
  }
}
