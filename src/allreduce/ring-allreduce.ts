// RingAllreduce: one per worker. It listens for its left neighbour, dials its right neighbour,
// and runs any number of operations over a ring epoch, matching segments to operations by
// (ring epoch, op id). Op ids are a per-ring counter that every member advances identically,
// one per allreduce() call, so callers must issue the same operations in the same order.
//
// Two planes per neighbour: the control link is the authenticated ws link (RightLink: the ring
// epoch in its hello, liveness); the bulk data is a raw TCP stream opened on the same listener
// port after its own HMAC handshake (data-handshake.ts), dialled by the receiving rank so it can
// read into preallocated memory (segment-receiver.ts), written from the op's buffer
// (segment-sender.ts); with halving/doubling also one each way per partner (data-streams.ts). The
// schedule is chosen by W and size (schedule.ts, chooseSchedule): a direct exchange for two ranks
// and small buffers (exchange-op.ts), recursive halving/doubling for a power of two of ranks
// (halving-op.ts), the pipelined ring otherwise (ring-op.ts).
//
// Failure model: any failure on a ring (a link or stream closes, a neighbour is unreachable, an
// op times out, a neighbour sends a segment that does not fit) fails every op in flight on it and
// closes the ring's links, which makes the neighbours fail theirs at once instead of waiting for a
// timeout. The ring then stays broken until setRing installs a new epoch; op ids restart at 0.
import type { Socket } from 'node:net';
import { Listener, type Connection, type TlsCredentials } from '../transport/index.ts';
import { Role, type Envelope } from '../wire/codec.ts';
import { createLogger } from '../util/log.ts';
import { AllreduceAbortedError, AllreduceProtocolError, AllreduceTimeoutError } from './errors.ts';
import { RingOp } from './ring-op.ts';
import { ExchangeOp } from './exchange-op.ts';
import { HalvingOp } from './halving-op.ts';
import { RightLink } from './right-link.ts';
import { acceptDataStream, DATA_PROTOCOL } from './data-handshake.ts';
import type { SegmentTarget } from './segment-receiver.ts';
import { DataStreams } from './data-streams.ts';
import type { SegmentHeader } from './segment-header.ts';
import { chooseSchedule, isPowerOfTwo } from './schedule.ts';
import { arenaFloats, releaseFloats } from './simd-add.ts';

const log = createLogger('allreduce');

export interface RingMember { nodeId: string; address: string }

export interface RingAllreduceOptions {
  nodeId: string;
  secret: Uint8Array;
  /** TLS credentials (mutual TLS) for the control links and the data stream; absent: plain. */
  tls?: TlsCredentials;
  host?: string;
  port?: number;
  /** Bytes of f32 data per segment this worker cuts its own block into (default 2 MiB: measured faster than 512 KiB on loopback at 16-64 MiB). */
  segmentBytes?: number;
  /** An op fails when it has received or sent nothing for this long (default 10 s). */
  timeoutMs?: number;
  /** Default for allreduce()'s f16 option: values travel as IEEE half precision. */
  f16?: boolean;
  /** Two workers and buffers up to this many bytes: a direct exchange instead of the ring (default EXCHANGE_MAX_BYTES; 0 turns it off). */
  exchangeMaxBytes?: number;
  /** W a power of two and buffers of at least this many bytes: recursive halving/doubling instead of the ring (default HALVING_MIN_BYTES; 0: every size; Infinity turns it off, and opens no streams to non-neighbours). */
  halvingMinBytes?: number;
  /** Receive buffer of the data stream from the left neighbour (default 1 MiB). */
  receiveBufferBytes?: number;
}

export interface AllreduceStats {
  /** Payload bytes (values on the wire: 4 per element, 2 with f16, padding included) sent to the right neighbour. */
  bytesSent: number;
  /** Payload bytes received (from the left neighbour, and halving partners), and those of them read straight into place (copied segments). */
  bytesReceived: number;
  bytesReadInPlace: number;
  /** Segments written to the data streams, and reads that returned data from them (what an op costs in syscalls, roughly). */
  segmentsSent: number;
  reads: number;
  /** Operations completed successfully (W = 1 included), and those of them run as a direct exchange or by halving/doubling. */
  ops: number;
  exchanges: number;
  halvings: number;
  /** Control-link messages refused without touching any op (segments travel on the data stream only). */
  rejectedMessages: number;
  /** Data-stream dials refused: bad credentials, not a peer this rank sends to in this ring, a second stream. */
  refusedStreams: number;
}

export const DEFAULT_SEGMENT_BYTES = 2 << 20;
export const MAX_SEGMENT_BYTES = 16 << 20;
/**
 * W = 2 buffers up to this size take the direct exchange. Measured (`bench allreduce --crossover`,
 * 2026-12-02, load ~16): a tie at 64 KiB (0.38 against 0.39 ms), the ring ahead from 256 KiB up
 * (0.57 against 0.69 ms; 1.78 against 3.57 ms at 1 MiB), so only small buffers are exchanged.
 */
export const EXCHANGE_MAX_BYTES = 64 << 10;
/**
 * W a power of two: halving/doubling from this size up, the ring below. Measured at W = 4 (CPU ms
 * per op, the least noisy figure on the shared machine; docs/allreduce.md, "Schedule by size"):
 * at 256 KiB the ring costs as much or less (0.67 against 1.01 ms per rank; one thread, four ranks,
 * compiled: 0.83 against 0.87), from 1 MiB halving/doubling costs the same or less (2.0 against
 * 3.0 ms; one thread 2.3 against 2.9) with half the reads, so the crossover is put at 1 MiB.
 */
export const HALVING_MIN_BYTES = 1 << 20;
const MIN_SEGMENT_BYTES = 4 << 10;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Segment offsets and counts are u32 on the wire. */
const MAX_ELEMENTS = 2 ** 32 - 1;
/** The control link carries no bulk data any more: small frames only. */
const MAX_FRAME_BYTES = 64 << 10;

interface Ring {
  epoch: number;
  members: RingMember[];
  rank: number;
  left: RingMember;
  right: RingMember;
}

type Op = RingOp | ExchangeOp | HalvingOp;

export class RingAllreduce {
  readonly stats: AllreduceStats = { bytesSent: 0, bytesReceived: 0, bytesReadInPlace: 0, segmentsSent: 0, reads: 0, ops: 0, exchanges: 0, halvings: 0, rejectedMessages: 0, refusedStreams: 0 };
  private listener!: Listener;
  private ring: Ring | null = null;
  private right: RightLink | null = null;
  private streams: DataStreams | null = null;
  private nextOpId = 0;
  private readonly ops = new Map<number, Op>();
  /** Why the current ring stopped working; null while it works. */
  private broken: string | null = null;
  private closed = false;
  /** Ring epoch each inbound control link announced in its hello (its ring_epoch field). */
  private readonly inboundEpoch = new Map<Connection, number | undefined>();
  /** The peer's values of a direct exchange land here (in WASM memory): grown once, reused by every exchange. */
  private staging: Float32Array | null = null;
  private stagingBusy = false;
  private readonly segmentElems: number;
  private readonly timeoutMs: number;
  private readonly exchangeMaxBytes: number;
  private readonly halvingMinBytes: number;

  private constructor(private readonly opts: RingAllreduceOptions) {
    const seg = Math.min(MAX_SEGMENT_BYTES, Math.max(MIN_SEGMENT_BYTES, opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES));
    this.segmentElems = Math.floor(seg / 4);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.exchangeMaxBytes = opts.exchangeMaxBytes ?? EXCHANGE_MAX_BYTES;
    this.halvingMinBytes = opts.halvingMinBytes ?? HALVING_MIN_BYTES;
  }

  static async create(opts: RingAllreduceOptions): Promise<RingAllreduce> {
    const ring = new RingAllreduce(opts);
    ring.listener = await Listener.listen({
      nodeId: opts.nodeId, secret: opts.secret, tls: opts.tls, host: opts.host, port: opts.port, maxFrameBytes: MAX_FRAME_BYTES,
      onRequest: (env, conn) => ring.onMessage(env, conn),
      onConnection: (conn) => ring.onInbound(conn),
      rawUpgrade: { protocol: DATA_PROTOCOL, onSocket: (socket, head, authenticated) => ring.onDataStream(socket, head, authenticated) },
    });
    return ring;
  }

  get nodeId(): string { return this.opts.nodeId; }

  /** This worker's ring listener, to announce to the scheduler (control links and data streams both). */
  get url(): string { return this.listener.url; }

  /** Its listener's refusals before any message (busy, hello timeouts, TLS handshakes). */
  get linkStats(): Listener['stats'] { return this.listener.stats; }

  /** The current ring epoch, or -1 before the first setRing. */
  get ringEpoch(): number { return this.ring?.epoch ?? -1; }

  /**
   * Installs the ring (members ordered by worker rank; this worker among them). Ops in flight on
   * the previous ring fail with AllreduceAbortedError at once; op ids restart at 0. Epochs only
   * grow; the same epoch with the same members again is a no-op.
   */
  setRing(members: RingMember[], ringEpoch: number): void {
    if (this.closed) throw new AllreduceAbortedError('setRing on a closed RingAllreduce');
    if (!Number.isSafeInteger(ringEpoch) || ringEpoch < 0) throw new RangeError(`ring epoch must be a non-negative integer, got ${ringEpoch}`);
    if (members.length === 0) throw new RangeError('a ring needs at least one member');
    const ids = members.map((m) => m.nodeId);
    if (new Set(ids).size !== ids.length) throw new RangeError(`ring members must be distinct, got ${ids.join(',')}`);
    const rank = ids.indexOf(this.opts.nodeId);
    if (rank < 0) throw new RangeError(`this worker (${this.opts.nodeId}) is not in the ring ${ids.join(',')}`);
    const old = this.ring;
    if (old) {
      const same = old.members.length === members.length && old.members.every((m, i) => m.nodeId === members[i]!.nodeId && m.address === members[i]!.address);
      if (ringEpoch === old.epoch && same) return;
      if (ringEpoch <= old.epoch) throw new RangeError(`ring epoch ${ringEpoch} is not newer than the current ${old.epoch}${ringEpoch === old.epoch ? ' (with different members)' : ''}`);
      this.failOps((op) => new AllreduceAbortedError(`ring changed from epoch ${old.epoch} to ${ringEpoch} during ${op.describe()}; retry on the new ring`));
      this.closeLinks('ring changed');
    }
    const w = members.length;
    this.ring = { epoch: ringEpoch, members: members.map((m) => ({ ...m })), rank, left: members[(rank - 1 + w) % w]!, right: members[(rank + 1) % w]! };
    this.nextOpId = 0;
    this.broken = null;
    // Links of older rings are of no use any more.
    for (const [conn, epoch] of this.inboundEpoch) if (epoch !== undefined && epoch < ringEpoch) void conn.close(4000, 'allreduce ring changed');
    if (w > 1) {
      const ring = this.ring;
      const onBroken = (why: string) => { if (this.ring === ring) this.breakRing(why); };
      this.right = new RightLink({
        nodeId: this.opts.nodeId, secret: this.opts.secret, tls: this.opts.tls, peer: ring.right, address: this.url, ringEpoch,
        maxFrameBytes: MAX_FRAME_BYTES, connectTimeoutMs: this.timeoutMs, onBroken,
      });
      this.streams = new DataStreams({
        nodeId: this.opts.nodeId, secret: this.opts.secret, tls: this.opts.tls, ringEpoch, members: ring.members, rank,
        halving: isPowerOfTwo(w) && w > 2 && this.halvingMinBytes <= MAX_ELEMENTS * 4, connectTimeoutMs: this.timeoutMs, receiveBufferBytes: this.opts.receiveBufferBytes,
        lookup: (h) => this.lookup(ring, h), io: this.stats, onSent: (bytes) => { this.stats.bytesSent += bytes; this.stats.segmentsSent++; }, onReceived: (bytes, inPlace) => { this.stats.bytesReceived += bytes; if (inPlace) this.stats.bytesReadInPlace += bytes; }, onBroken,
      });
    }
    log.debug('ring', { epoch: ringEpoch, rank, workers: w, left: this.ring.left.nodeId, right: this.ring.right.nodeId });
  }

  /**
   * Sums (or averages) `buf` across the ring, in place, and resolves with it. Every member must
   * call with a buffer of the same length, the same op and the same f16 setting, in the same
   * order as the others. Do not touch `buf` until the promise settles.
   */
  async allreduce(buf: Float32Array, op: 'sum' | 'mean' = 'sum', opts: { f16?: boolean; timeoutMs?: number } = {}): Promise<Float32Array> {
    if (!(buf instanceof Float32Array)) throw new TypeError('allreduce needs a Float32Array');
    if (op !== 'sum' && op !== 'mean') throw new RangeError(`unknown reduction ${String(op)} (sum or mean)`);
    if (buf.length > MAX_ELEMENTS) throw new RangeError(`allreduce of ${buf.length} elements: at most ${MAX_ELEMENTS} per call (split the buffer)`);
    if (this.closed) throw new AllreduceAbortedError('allreduce on a closed RingAllreduce');
    const ring = this.ring;
    if (!ring) throw new AllreduceAbortedError('allreduce before setRing: no ring yet');
    const w = ring.members.length;
    if (w === 1) { this.stats.ops++; return buf; } // the sum and the mean of one buffer are itself
    const opId = this.nextOpId++;
    if (this.broken) throw new AllreduceAbortedError(`ring epoch ${ring.epoch} is broken (${this.broken}); call setRing with the current membership, then retry`);
    const streams = this.streams!;
    const spec = {
      opId, ringEpoch: ring.epoch, rank: ring.rank, workers: w, buf, mean: op === 'mean',
      f16: opts.f16 ?? this.opts.f16 ?? false, segmentElems: this.segmentElems, send: streams.send.bind(streams), wake: streams.wake.bind(streams),
    };
    // Every rank decides alike: the choice depends only on W and the length, which all share.
    const schedule = chooseSchedule(w, buf.byteLength, { exchangeMaxBytes: this.exchangeMaxBytes, halvingMinBytes: this.halvingMinBytes });
    const exchange = schedule === 'exchange';
    let ownsStaging = false;
    let staging: Float32Array | null = null;
    let ringOp: Op;
    if (exchange) {
      ownsStaging = !this.stagingBusy;
      const bytes = Math.max(4, buf.byteLength);
      if (ownsStaging && (this.staging?.byteLength ?? 0) < bytes) {
        if (this.staging) releaseFloats(this.staging);
        this.staging = arenaFloats(bytes / 4);
      }
      staging = ownsStaging ? this.staging! : arenaFloats(bytes / 4); // concurrent exchanges: one of their own
      if (ownsStaging) this.stagingBusy = true;
      ringOp = new ExchangeOp(spec, staging);
    } else if (schedule === 'halving') ringOp = new HalvingOp(spec, ring.members.map((m) => m.nodeId));
    else ringOp = new RingOp(spec);
    this.ops.set(opId, ringOp);
    const timer = this.watch(ringOp, opts.timeoutMs ?? this.timeoutMs);
    try {
      ringOp.start();
      streams.wake();
      const out = await ringOp.done;
      this.stats.ops++;
      if (exchange) this.stats.exchanges++;
      if (schedule === 'halving') this.stats.halvings++;
      return out;
    } finally {
      clearTimeout(timer.handle);
      if (ownsStaging) this.stagingBusy = false;
      else if (staging) releaseFloats(staging); // the op is over (on failure the streams are closed already)
      if (this.ops.get(opId) === ringOp) this.ops.delete(opId);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failOps(() => new AllreduceAbortedError('RingAllreduce closed'));
    const right = this.right;
    this.closeLinks('closing');
    if (this.staging) releaseFloats(this.staging); // the streams that read into it are closed
    this.staging = null;
    await Promise.all([right?.close('closing'), this.listener.close()]);
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  /** The op a checked segment header names on `ring`: null while it has not started here. */
  private lookup(ring: Ring, h: SegmentHeader): SegmentTarget | null {
    const bad = (why: string) => new AllreduceProtocolError(`segment for op ${h.opId} (ring epoch ${h.ringEpoch}): ${why}`);
    if (h.ringEpoch !== ring.epoch) throw bad(`the stream was opened for ring epoch ${ring.epoch}`);
    const op = this.ops.get(h.opId);
    if (op) return op;
    if (h.opId >= this.nextOpId) return null; // the stream is in order: wait for this rank to start it
    throw bad('that op is not running here (finished or failed); the stream is out of step');
  }

  /** A dial to the data port: authenticated, and only from a peer this rank sends to on the current ring, once each. */
  private onDataStream(socket: Socket, head: Uint8Array, authenticated: () => void): void {
    const admit = (peerId: string, epoch: number): string | null => {
      const ring = this.ring;
      if (this.closed) return 'this worker is closing';
      if (!ring || epoch > ring.epoch) return `ring epoch ${epoch} is not installed here yet (current ${ring?.epoch ?? 'none'}); retry`;
      if (epoch < ring.epoch) return `ring epoch ${epoch} is over (current ${ring.epoch})`;
      if (this.broken) return `ring epoch ${epoch} is broken here (${this.broken})`;
      return this.streams ? this.streams.refusal(peerId) : `ring epoch ${epoch} has one member: no data streams`;
    };
    acceptDataStream(socket, head, { secret: this.opts.secret, nodeId: this.opts.nodeId, admit }).then(
      ({ peerId, ringEpoch }) => {
        authenticated();
        const ring = this.ring;
        if (!ring || ring.epoch !== ringEpoch || !this.streams?.attach(peerId, socket)) socket.destroy(); // changed meanwhile
      },
      (e: Error) => {
        this.stats.refusedStreams++;
        log.warn('data-stream-refused', { why: e.message });
      },
    );
  }

  private onInbound(conn: Connection): void {
    const epoch = conn.peerRingEpoch;
    this.inboundEpoch.set(conn, epoch);
    void conn.closed.then(({ code, reason }) => {
      this.inboundEpoch.delete(conn);
      const ring = this.ring;
      if (!this.closed && ring && epoch === ring.epoch && conn.peerId === ring.left.nodeId) {
        this.breakRing(`link from left neighbour ${conn.peerId} closed (${code}${reason ? ` ${reason}` : ''})`);
      }
    });
  }

  /** The control link carries no data: every message on it is refused (counted, logged). */
  private onMessage(env: Envelope, conn: Connection): void {
    this.stats.rejectedMessages++;
    log.warn('rejected', { from: conn.peerId, why: `unexpected ${env.body.type} message on the allreduce control link (segments travel on the data stream)` });
  }

  // -------------------------------------------------------------------------------------------
  // Failure

  /** Fails `op` when it has neither received nor sent anything for `timeoutMs`. */
  private watch(op: Op, timeoutMs: number): { handle: NodeJS.Timeout } {
    const timer = { handle: undefined as unknown as NodeJS.Timeout };
    const check = () => {
      if (op.settled) return;
      const idle = performance.now() - op.lastProgress;
      if (idle < timeoutMs) { timer.handle = setTimeout(check, timeoutMs - idle + 1); return; }
      const ring = this.ring;
      const why = `no progress for ${timeoutMs} ms in ${op.describe()}; left neighbour ${ring?.left.nodeId}, right neighbour ${ring?.right.nodeId} (do all workers issue the same ops in the same order?)`;
      op.fail(new AllreduceTimeoutError(why));
      if (ring && op.spec.ringEpoch === ring.epoch) this.breakRing(`an op timed out: ${why}`);
    };
    timer.handle = setTimeout(check, timeoutMs);
    return timer;
  }

  /** Fails every op on the current ring and closes its links, so the neighbours learn at once. */
  private breakRing(why: string): void {
    const ring = this.ring;
    if (this.broken || this.closed || !ring) return;
    this.broken = why;
    // With no operation in flight nothing failed (a neighbour left between steps, or at the end).
    (this.ops.size > 0 ? log.warn : log.debug)('ring-broken', { epoch: ring.epoch, why, opsFailed: this.ops.size });
    this.failOps((op) => new AllreduceAbortedError(`ring epoch ${ring.epoch} broke during ${op.describe()}: ${why}; call setRing with the current membership, then retry`));
    this.closeLinks('allreduce ring broken');
    for (const [conn, epoch] of this.inboundEpoch) if (epoch === ring.epoch) void conn.close(4000, 'allreduce ring broken');
  }

  private closeLinks(reason: string): void {
    void this.right?.close(reason);
    this.streams?.close();
    this.right = null;
    this.streams = null;
  }

  private failOps(err: (op: Op) => Error): void {
    for (const op of this.ops.values()) op.fail(err(op));
    this.ops.clear();
  }
}
