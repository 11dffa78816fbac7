// RingAllreduce: one per worker. It listens for its left neighbour, dials its right neighbour,
// and runs any number of operations (RingOp) over those two links, matching chunks to operations
// by (ring epoch, op id). Op ids are a per-ring counter that every member advances identically,
// one per allreduce() call, so callers must issue the same operations in the same order.
//
// Failure model: any failure on a ring (a link closes, a neighbour is unreachable, an op times
// out, a neighbour sends a chunk that does not fit) fails every op in flight on it and closes the
// ring's links, which makes the neighbours fail theirs at once instead of waiting for a timeout.
// The ring then stays broken until setRing installs a new epoch; op ids restart at 0 there.
import { Listener, type Connection } from '../transport/index.ts';
import { Role, type Envelope } from '../wire/codec.ts';
import { createLogger } from '../util/log.ts';
import { AllreduceAbortedError, AllreduceTimeoutError } from './errors.ts';
import { RingOp, type Chunk } from './ring-op.ts';
import { RightLink } from './right-link.ts';

const log = createLogger('allreduce');

export interface RingMember { nodeId: string; address: string }

export interface RingAllreduceOptions {
  nodeId: string;
  secret: Uint8Array;
  host?: string;
  port?: number;
  /** Bytes of f32 data per chunk this worker cuts its own block into (default 2 MiB: measured faster than 512 KiB on loopback at 16-64 MiB). */
  segmentBytes?: number;
  /** An op fails when it has received or sent nothing for this long (default 10 s). */
  timeoutMs?: number;
  /** Default for allreduce()'s f16 option: values travel as IEEE half precision. */
  f16?: boolean;
  /** Cap on chunks held for ops (or rings) this worker has not started yet (default 512 MiB). */
  maxEarlyBytes?: number;
}

export interface AllreduceStats {
  /** Payload bytes (values on the wire: 4 per element, 2 with f16) sent to the right neighbour. */
  bytesSent: number;
  /** Payload bytes received from the left neighbour. */
  bytesReceived: number;
  /** Operations completed successfully (W = 1 included). */
  ops: number;
  /** Chunks dropped because they belonged to an old ring or to an op that had already failed. */
  staleChunks: number;
  /** Messages refused without touching any op: wrong sender, wrong type, wrong link. */
  rejectedMessages: number;
}

export const DEFAULT_SEGMENT_BYTES = 2 << 20;
export const MAX_SEGMENT_BYTES = 16 << 20;
const MIN_SEGMENT_BYTES = 4 << 10;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_EARLY_BYTES = 512 << 20;
/** Frame limit on the ring listener: the largest segment any member may use, plus the envelope. */
const MAX_FRAME_BYTES = MAX_SEGMENT_BYTES + (64 << 10);

interface Ring {
  epoch: number;
  members: RingMember[];
  rank: number;
  left: RingMember;
  right: RingMember;
}

export class RingAllreduce {
  readonly stats: AllreduceStats = { bytesSent: 0, bytesReceived: 0, ops: 0, staleChunks: 0, rejectedMessages: 0 };
  private listener!: Listener;
  private ring: Ring | null = null;
  private right: RightLink | null = null;
  private nextOpId = 0;
  private readonly ops = new Map<number, RingOp>();
  /** Why the current ring stopped working; null while it works. */
  private broken: string | null = null;
  private closed = false;
  /** Ring epoch each inbound link announced in its hello (its ring_epoch field). */
  private readonly inboundEpoch = new Map<Connection, number | undefined>();
  /** Chunks that arrived before their op started here, by `${epoch}:${opId}`, in arrival order. */
  private readonly early = new Map<string, { chunks: Chunk[]; conn: Connection }>();
  private earlyBytes = 0;
  private readonly paused = new Set<Connection>();
  private readonly segmentElems: number;
  private readonly timeoutMs: number;
  private readonly maxEarlyBytes: number;

  private constructor(private readonly opts: RingAllreduceOptions) {
    const seg = Math.min(MAX_SEGMENT_BYTES, Math.max(MIN_SEGMENT_BYTES, opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES));
    this.segmentElems = Math.floor(seg / 4);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxEarlyBytes = opts.maxEarlyBytes ?? DEFAULT_MAX_EARLY_BYTES;
  }

  static async create(opts: RingAllreduceOptions): Promise<RingAllreduce> {
    const ring = new RingAllreduce(opts);
    ring.listener = await Listener.listen({
      nodeId: opts.nodeId, secret: opts.secret, host: opts.host, port: opts.port, maxFrameBytes: MAX_FRAME_BYTES,
      onRequest: (env, conn) => ring.onMessage(env, conn),
      onConnection: (conn) => ring.onInbound(conn),
    });
    return ring;
  }

  get nodeId(): string { return this.opts.nodeId; }

  /** This worker's ring listener, to announce to the scheduler. */
  get url(): string { return this.listener.url; }

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
      void this.right?.close('ring changed');
      this.right = null;
    }
    const w = members.length;
    this.ring = { epoch: ringEpoch, members: members.map((m) => ({ ...m })), rank, left: members[(rank - 1 + w) % w]!, right: members[(rank + 1) % w]! };
    this.nextOpId = 0;
    this.broken = null;
    // Links and held chunks of older rings are of no use any more.
    for (const [conn, epoch] of this.inboundEpoch) if (epoch !== undefined && epoch < ringEpoch) void conn.close(4000, 'allreduce ring changed');
    this.dropEarly((epoch) => epoch < ringEpoch);
    if (w > 1) {
      const ring = this.ring;
      this.right = new RightLink({
        nodeId: this.opts.nodeId, secret: this.opts.secret, peer: ring.right, address: this.url, ringEpoch,
        maxFrameBytes: MAX_FRAME_BYTES, connectTimeoutMs: this.timeoutMs,
        onSent: (bytes) => { this.stats.bytesSent += bytes; },
        onBroken: (why) => { if (this.ring === ring) this.breakRing(why); },
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
    if (this.closed) throw new AllreduceAbortedError('allreduce on a closed RingAllreduce');
    const ring = this.ring;
    if (!ring) throw new AllreduceAbortedError('allreduce before setRing: no ring yet');
    const w = ring.members.length;
    if (w === 1) { this.stats.ops++; return buf; } // the sum and the mean of one buffer are itself
    const opId = this.nextOpId++;
    if (this.broken) throw new AllreduceAbortedError(`ring epoch ${ring.epoch} is broken (${this.broken}); call setRing with the current membership, then retry`);
    const right = this.right!;
    const ringOp = new RingOp({
      opId, ringEpoch: ring.epoch, rank: ring.rank, workers: w, buf, mean: op === 'mean',
      f16: opts.f16 ?? this.opts.f16 ?? false, segmentElems: this.segmentElems,
      send: (body, o) => right.send(body, o),
    });
    this.ops.set(opId, ringOp);
    const timer = this.watch(ringOp, opts.timeoutMs ?? this.timeoutMs);
    try {
      ringOp.start();
      for (const c of this.takeEarly(ring.epoch, opId)) {
        if (ringOp.settled) break;
        if (c.from !== ring.left.nodeId) { this.refuse(c.from, `chunk for ring epoch ${ring.epoch} from ${c.from}, but the left neighbour there is ${ring.left.nodeId}`); continue; }
        this.deliver(ringOp, c);
      }
      const out = await ringOp.done;
      this.stats.ops++;
      return out;
    } finally {
      clearTimeout(timer.handle);
      if (this.ops.get(opId) === ringOp) this.ops.delete(opId);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failOps(() => new AllreduceAbortedError('RingAllreduce closed'));
    this.dropEarly(() => true);
    await Promise.all([this.right?.close('closing'), this.listener.close()]);
    this.right = null;
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  private onInbound(conn: Connection): void {
    const epoch = conn.peerRingEpoch;
    this.inboundEpoch.set(conn, epoch);
    void conn.closed.then(({ code, reason }) => {
      this.inboundEpoch.delete(conn);
      this.paused.delete(conn);
      const ring = this.ring;
      if (!this.closed && ring && epoch === ring.epoch && conn.peerId === ring.left.nodeId) {
        this.breakRing(`link from left neighbour ${conn.peerId} closed (${code}${reason ? ` ${reason}` : ''})`);
      }
    });
  }

  private onMessage(env: Envelope, conn: Connection): void {
    const b = env.body;
    if (b.type !== 'allreduceChunk') return this.refuse(conn.peerId, `unexpected ${b.type} message on the allreduce listener`);
    if (conn.peerRole !== Role.Worker) return this.refuse(conn.peerId, `allreduce chunk from a non-worker (role ${conn.peerRole})`);
    this.stats.bytesReceived += b.values.length * (b.f16 ? 2 : 4);
    const linkEpoch = this.inboundEpoch.get(conn);
    if (linkEpoch !== undefined && linkEpoch !== b.ringEpoch) return this.refuse(conn.peerId, `chunk for ring epoch ${b.ringEpoch} on a link opened for epoch ${linkEpoch}`);
    const chunk: Chunk = { ...b, from: conn.peerId };
    const ring = this.ring;
    if (!ring || b.ringEpoch > ring.epoch) return this.hold(chunk, conn); // a ring this worker has not been told about yet
    if (b.ringEpoch < ring.epoch || this.broken) { this.stats.staleChunks++; return; }
    if (conn.peerId !== ring.left.nodeId) return this.refuse(conn.peerId, `chunk for ring epoch ${ring.epoch} from ${conn.peerId}, but the left neighbour there is ${ring.left.nodeId}`);
    const op = this.ops.get(b.opId);
    if (op) return this.deliver(op, chunk);
    if (b.opId < this.nextOpId) { this.stats.staleChunks++; return; } // that op already failed here
    this.hold(chunk, conn);
  }

  private deliver(op: RingOp, c: Chunk): void {
    try {
      op.receive(c);
    } catch (e) {
      op.fail(e as Error);
      this.breakRing((e as Error).message);
    }
  }

  /** A message that belongs to no op: counted, logged, otherwise ignored. */
  private refuse(from: string, why: string): void {
    this.stats.rejectedMessages++;
    log.warn('rejected', { from, why });
  }

  // -------------------------------------------------------------------------------------------
  // Chunks for ops not started yet. The ring bounds them: a left neighbour can run at most W-1
  // steps of an op ahead of this worker, so per op at most (W-1)/W of the buffer waits here. A
  // caller that issues ops in a different order than its peers can exceed that; past the cap the
  // inbound socket is paused (TCP backpressure reaches the sender) until chunks are consumed.

  private hold(c: Chunk, conn: Connection): void {
    const key = `${c.ringEpoch}:${c.opId}`;
    let entry = this.early.get(key);
    if (!entry) this.early.set(key, (entry = { chunks: [], conn }));
    entry.chunks.push(c);
    this.earlyBytes += c.values.byteLength;
    if (this.earlyBytes > this.maxEarlyBytes && !this.paused.has(conn)) {
      log.warn('early-chunks-over-cap', { bytes: this.earlyBytes, cap: this.maxEarlyBytes, pausing: conn.peerId });
      this.paused.add(conn);
      conn.holdReading();
    }
  }

  private takeEarly(epoch: number, opId: number): Chunk[] {
    const key = `${epoch}:${opId}`;
    const entry = this.early.get(key);
    if (!entry) return [];
    this.early.delete(key);
    for (const c of entry.chunks) this.earlyBytes -= c.values.byteLength;
    this.resumeIfBelowCap();
    return entry.chunks;
  }

  private dropEarly(which: (epoch: number) => boolean): void {
    for (const [key, entry] of this.early) {
      if (!which(entry.chunks[0]!.ringEpoch)) continue;
      this.early.delete(key);
      for (const c of entry.chunks) this.earlyBytes -= c.values.byteLength;
      this.stats.staleChunks += entry.chunks.length;
    }
    this.resumeIfBelowCap();
  }

  private resumeIfBelowCap(): void {
    if (this.paused.size === 0 || this.earlyBytes > this.maxEarlyBytes / 2) return;
    for (const conn of this.paused) if (conn.isOpen) conn.releaseReading();
    this.paused.clear();
  }

  // -------------------------------------------------------------------------------------------
  // Failure

  /** Fails `op` when it has neither received nor sent anything for `timeoutMs`. */
  private watch(op: RingOp, timeoutMs: number): { handle: NodeJS.Timeout } {
    const timer = { handle: undefined as unknown as NodeJS.Timeout };
    const check = () => {
      if (op.settled) return;
      const idle = performance.now() - op.lastProgress;
      if (idle < timeoutMs) { timer.handle = setTimeout(check, timeoutMs - idle + 1); return; }
      const ring = this.ring;
      const note = this.paused.size ? `; receiving is paused with ${this.earlyBytes} bytes held for ops not started here (do all workers issue the same ops in the same order?)` : '';
      const why = `no progress for ${timeoutMs} ms in ${op.describe()}; left neighbour ${ring?.left.nodeId}, right neighbour ${ring?.right.nodeId}${note}`;
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
    void this.right?.close('allreduce ring broken');
    for (const [conn, epoch] of this.inboundEpoch) if (epoch === ring.epoch) void conn.close(4000, 'allreduce ring broken');
    this.dropEarly((epoch) => epoch <= ring.epoch);
  }

  private failOps(err: (op: RingOp) => Error): void {
    for (const op of this.ops.values()) op.fail(err(op));
    this.ops.clear();
  }
}
