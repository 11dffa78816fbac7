// The receiving end of one data stream: from the left neighbour (the ring), or from a halving/
// doubling partner (halving-op.ts), one per peer this rank receives from. This rank dials (after the
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
import { arenaFloats, releaseFloats, simdArena } from './simd-add.ts';
import { FLAG_F16, HEADER_BYTES, payloadBytes, readHeader, type SegmentHeader } from './segment-header.ts';

/**
 * What the receiver hands a checked segment's values to (RingOp, ExchangeOp, HalvingOp). The
 * receiver keeps the segment's header and how far it has got: an op fed by several streams at once
 * (halving/doubling) holds no per-segment state of its own.
 */
export interface SegmentTarget {
  /** Checks the header against what the op expects next from `from` (a node id); throws AllreduceProtocolError. */
  check(h: SegmentHeader, from: string): void;
  /** Values `at`..`at+n` of the buffer (element offsets; `h` checked before) are src[from..from+n) (src in the WASM arena: simd-add.ts adds them fastest). */
  take(h: SegmentHeader, at: number, src: Float32Array, from: number, n: number): void;
  /** The segment `h` is complete. */
  segmentDone(h: SegmentHeader): void;
  /**
   * Where a checked f32 segment's values are only copied (all-gather steps, the exchange's
   * staging): that array, indexed by element offset, so the stream can read them into place;
   * null where they are added (they must pass through the receive buffer).
   */
  copyTarget(h: SegmentHeader): Float32Array | null;
  /** performance.now() of the op's last progress (the receiver moves it on reads into place). */
  lastProgress: number;
  /**
   * False while a checked segment may not be applied yet (halving/doubling: an earlier step has not
   * added into that range, and the adds must keep their order for the same bits run to run):
   * reading waits, as for an op not started, until wake().
   */
  ready?(h: SegmentHeader): boolean;
}

/**
 * A copied segment's values are read straight into the op's buffer (the kernel copies them into
 * place; no pass through the receive buffer) when at least this much of it is left and nothing
 * else is pending: smaller ones are not worth the extra read.
 */
const DIRECT_MIN_BYTES = 16 << 10;

export interface SegmentReceiverOptions {
  /** The peer's ring listener (ws://host:port) and node id. */
  url: string;
  peer: string;
  /** What the peer is to this rank, for messages: 'left neighbour' or 'halving partner'. */
  role: string;
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
  /** Counted per read that returned bytes (a read syscall, give or take libuv's batching): the bench reports them per op. */
  io: { reads: number };
  /** Payload bytes taken; `inPlace`: read straight into the op's buffer. */
  onBytes: (payloadBytes: number, inPlace: boolean) => void;
  onBroken: (why: string) => void;
}

export const DEFAULT_RECEIVE_BUFFER_BYTES = 1 << 20;

/**
 * Whether `view` starts inside `region`: a read into place, not into buf. Both may be in the WASM
 * arena, where views on one memory name different SharedArrayBuffer objects (one per grow) and
 * addresses are what tell them apart.
 */
function startsIn(view: Uint8Array, region: ArrayBufferView): boolean {
  const arena = simdArena();
  const same = view.buffer === region.buffer || (arena !== null && arena.owns(view) && arena.owns(region));
  return same && view.byteOffset >= region.byteOffset && view.byteOffset < region.byteOffset + region.byteLength;
}

export class SegmentReceiver {
  private socket: Socket | null = null;
  private closedByUs = false;
  private handshake: ClientHandshake | null = null;
  /** buf and scratch, one region of the WASM arena (the SIMD add reads from there): given back once closed and no socket is left. */
  private readonly region: Float32Array;
  private released = false;
  /** Sockets dialled and not closed yet (the kernel may still read into buf while one is open). */
  private live = 0;
  private readonly buf: Uint8Array;
  private readonly words: Uint32Array;
  private readonly f32: Float32Array;
  private readonly u16: Uint16Array;
  private readonly scratch: Float32Array;
  /** Views of buf from offset 0..HEADER_BYTES: where the next read goes, made once. */
  private readonly views: Uint8Array[] = [];
  /** The same, ending at HEADER_BYTES: a header is read alone, so that a copied segment's values can go straight into place. */
  private readonly headerViews: Uint8Array[] = [];
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
  /** A header names an op not started here, or a segment its op cannot take yet: reading stops until wake(). */
  private waiting = false;
  /** The current segment's values are being read into place (copyTarget): until it ends, every read goes there. */
  private direct: Float32Array | null = null;

  constructor(private readonly o: SegmentReceiverOptions) {
    const bytes = Math.max(64 << 10, o.bufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES) & ~3;
    // The f16 values' f32 scratch (2 bytes per received byte) sits after buf: the adds from it are SIMD too.
    this.region = arenaFloats(bytes / 4 + bytes / 2);
    const at = this.region.byteOffset;
    this.buf = new Uint8Array(this.region.buffer, at, bytes);
    this.words = new Uint32Array(this.region.buffer, at, bytes / 4);
    this.f32 = this.region.subarray(0, bytes / 4);
    this.u16 = new Uint16Array(this.region.buffer, at, bytes / 2);
    this.scratch = this.region.subarray(bytes / 4);
    for (let i = 0; i <= HEADER_BYTES; i++) this.views.push(this.buf.subarray(i));
    for (let i = 0; i < HEADER_BYTES; i++) this.headerViews.push(this.buf.subarray(i, HEADER_BYTES));
    void this.connect();
  }

  /** An op started here, or one made progress: if reading waits for it, go on. */
  wake(): void {
    if (!this.waiting || !this.socket) return;
    this.waiting = false;
    this.parse();
    if (!this.waiting) this.socket.resume();
  }

  close(): void {
    this.closedByUs = true;
    this.socket?.destroy();
    this.maybeRelease();
  }

  /** Gives the region back once nothing can read into it: closed by us and every socket closed. */
  private maybeRelease(): void {
    if (!this.closedByUs || this.live > 0 || this.released) return;
    this.released = true;
    releaseFloats(this.region);
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
    if (!this.closedByUs) this.o.onBroken(`cannot open the data stream from ${this.o.role} ${this.o.peer} at ${this.o.url} within ${this.o.connectTimeoutMs} ms: ${lastErr || 'no attempt made'}`);
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
      this.live++;
      const timer = setTimeout(() => fail(new Error('handshake timed out')), Math.max(100, deadline - performance.now()));
      socket.on('error', (e: Error) => fail(e));
      socket.on('close', () => {
        this.live--;
        this.maybeRelease();
        if (!open) return fail(new Error('closed during the handshake'));
        if (!this.closedByUs) this.o.onBroken(`data stream from ${this.o.role} ${this.o.peer} closed`);
      });
    });
  }

  private nextReadBuffer(): Uint8Array {
    // Node asks right after each read callback, so `cur` and `remaining` are this read's state.
    if (this.cur && !this.f16 && (this.direct || (this.fill === 0 && this.remaining >= DIRECT_MIN_BYTES))) {
      this.direct ??= this.cur.copyTarget(this.hdr);
      const d = this.direct;
      if (d) return new Uint8Array(d.buffer, d.byteOffset + this.hdr.offset * 4 + this.hdr.count * 4 - this.remaining, this.remaining);
    }
    // Reads end where segments do: the header alone (one more read per segment, 128 KiB-2 MiB
    // apart), so the values after it can be read into place when they are only copied. Added
    // values go through buf up to the segment's end (a view per read: the young GC takes it).
    if (!this.handshake && !this.cur && this.fill < HEADER_BYTES) return this.headerViews[this.fill]!;
    if (!this.handshake && this.cur && this.fill + this.remaining < this.buf.length) return this.buf.subarray(this.fill, this.fill + this.remaining);
    return this.fill < this.views.length ? this.views[this.fill]! : this.spare;
  }

  /** `n` bytes of the current segment's values landed in place (nextReadBuffer's direct view). */
  private landedInPlace(n: number): void {
    const cur = this.cur!;
    this.remaining -= n;
    cur.lastProgress = performance.now();
    this.o.onBytes(n, true);
    if (this.remaining > 0) return;
    this.direct = null;
    this.valuesLeft = 0;
    this.cur = null;
    cur.segmentDone(this.hdr);
  }

  private onRead(n: number, landed: Uint8Array, socket: Socket, opened: () => void, refused: (e: Error) => void): boolean {
    if (this.closedByUs) { socket.destroy(); return false; } // closed, or the ring moved on during the handshake
    this.o.io.reads++;
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
    } else if (this.direct && startsIn(landed, this.direct)) {
      this.landedInPlace(n);
    } else {
      // Node asked for this read's buffer before the last parse: after wake() consumed
      // pending bytes the read may have landed further up. Move it down to the pending end.
      // The spare: see its comment (a parse ran since, so fill is small again).
      const at = landed.byteOffset - this.buf.byteOffset;
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
    return !this.waiting; // false pauses the socket until wake()
  }

  private broken(why: string): void {
    this.closedByUs = true; // nothing more is read; the ring reports why
    this.socket?.destroy();
    this.o.onBroken(`segment from ${this.o.role} ${this.o.peer} refused: ${why}`);
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
        if (!target || (target.ready && !target.ready(this.hdr))) { this.waiting = true; break; }
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
      const dst = this.hdr.offset + this.hdr.count - this.valuesLeft;
      if (this.f16) {
        const k = Math.min(take >> 1, this.valuesLeft), at = pos >> 1;
        f16ToF32(this.u16.subarray(at, at + k), this.scratch); // f16 only: a view per read
        this.cur.take(this.hdr, dst, this.scratch, 0, k);
        this.valuesLeft -= k;
      } else {
        this.cur.take(this.hdr, dst, this.f32, pos >> 2, take >> 2);
        this.valuesLeft -= take >> 2;
      }
      this.o.onBytes(take, false);
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0) {
        const done = this.cur;
        this.cur = null;
        done.segmentDone(this.hdr);
      }
    }
    if (pos > 0 && pos < end) this.buf.copyWithin(0, pos, end);
    this.fill = end - pos;
  }
}
