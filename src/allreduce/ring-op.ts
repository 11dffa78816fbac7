// One allreduce operation on one rank: the buffer, how far each step has got, and what to do with
// a chunk from the left neighbour (add or copy it, then forward the same range to the right).
// It knows nothing about sockets: the ring hands it chunks and gives it a function to send with.
import type { AllreduceChunkBody } from '../wire/codec.ts';
import { AllreduceProtocolError, type AllreduceError } from './errors.ts';
import { addInto, divideInPlace, roundToF16InPlace } from './local-math.ts';
import { blockStart, finalReduceStep, isReduceStep, recvBlock, sendBlock, stepCount } from './schedule.ts';

/** A chunk as the ring received it, with the node it came from. */
export interface Chunk extends AllreduceChunkBody { from: string }

export interface RingOpSpec {
  opId: number;
  ringEpoch: number;
  rank: number;
  workers: number;
  buf: Float32Array;
  mean: boolean;
  f16: boolean;
  /** Elements per chunk this rank cuts its own block into (forwarded chunks keep their size). */
  segmentElems: number;
  /** Queues a chunk for the right neighbour; the ring calls `sent()` once it has been encoded. */
  send: (body: AllreduceChunkBody, op: RingOp) => void;
}

export class RingOp {
  readonly done: Promise<Float32Array>;
  /** Next expected element offset, end of the block, and next segment index, per wire step. */
  private readonly cursor: number[] = [];
  private readonly end: number[] = [];
  private readonly nextSegment: number[] = [];
  private stepsLeft = 0;
  private pendingSends = 0;
  private resolve!: (b: Float32Array) => void;
  private reject!: (e: Error) => void;
  settled = false;
  /** performance.now() of the last chunk received or sent: the idle timeout counts from here. */
  lastProgress = performance.now();

  constructor(readonly spec: RingOpSpec) {
    this.done = new Promise((res, rej) => { this.resolve = res; this.reject = rej; });
    const { rank, workers: w, buf } = spec;
    const n = buf.length;
    for (let s = 0; s < stepCount(w); s++) {
      const b = recvBlock(rank, s, w);
      this.cursor.push(blockStart(b, n, w));
      this.end.push(blockStart(b + 1, n, w));
      this.nextSegment.push(0);
      if (this.cursor[s]! < this.end[s]!) this.stepsLeft++;
    }
  }

  get opId(): number { return this.spec.opId; }

  /** Sends this rank's own block as step 0, cut into segments. */
  start(): void {
    const { rank, workers: w, buf, segmentElems } = this.spec;
    const b = sendBlock(rank, 0, w);
    const lo = blockStart(b, buf.length, w), hi = blockStart(b + 1, buf.length, w);
    for (let at = lo, seg = 0; at < hi; at += segmentElems, seg++) this.emit(0, seg, at, Math.min(segmentElems, hi - at));
    this.maybeFinish();
  }

  /** Progress so far, for error messages. */
  describe(): string {
    const waiting = this.cursor.map((c, s) => (c < this.end[s]! ? s : -1)).filter((s) => s >= 0);
    return `op ${this.opId} (ring epoch ${this.spec.ringEpoch}, rank ${this.spec.rank}/${this.spec.workers}, ${this.spec.buf.length} elements): ` +
      (waiting.length ? `waiting for step${waiting.length > 1 ? 's' : ''} ${waiting.join(',')}` : `all received, ${this.pendingSends} chunk(s) still to send`);
  }

  /** Applies one chunk from the left neighbour; throws AllreduceProtocolError if it does not fit. */
  receive(c: Chunk): void {
    const { workers: w, buf, f16 } = this.spec;
    const n = c.values.length;
    const bad = (why: string) => new AllreduceProtocolError(`bad allreduce chunk from ${c.from} for op ${c.opId} step ${c.step} segment ${c.segment} (ring epoch ${c.ringEpoch}): ${why}`);
    if (!Number.isInteger(c.step) || c.step < 0 || c.step >= stepCount(w)) throw bad(`step out of range 0..${stepCount(w) - 1}`);
    const s = c.step;
    if (n === 0) throw bad('no values');
    if (!!c.f16 !== f16) throw bad(`values are ${c.f16 ? 'f16' : 'f32'} but this op uses ${f16 ? 'f16' : 'f32'} (every rank must pass the same f16 setting)`);
    if (c.segment !== this.nextSegment[s]) throw bad(`expected segment ${this.nextSegment[s]}`);
    if (c.offset !== this.cursor[s]) throw bad(`offset ${c.offset}, expected ${this.cursor[s]} (do all ranks pass buffers of ${buf.length} elements?)`);
    if (c.offset + n > this.end[s]!) throw bad(`${n} values at offset ${c.offset} overrun the block ending at ${this.end[s]} (do all ranks pass buffers of ${buf.length} elements?)`);
    const at = c.offset;
    if (isReduceStep(s, w)) {
      addInto(buf, at, c.values);
      if (s === finalReduceStep(w)) {
        // This range now holds the complete sum and this rank owns it: finish it here, once.
        const mine = buf.subarray(at, at + n);
        if (this.spec.mean) divideInPlace(mine, w);
        if (f16) roundToF16InPlace(mine);
      }
    } else {
      buf.set(c.values, at);
    }
    this.cursor[s]! += n;
    this.nextSegment[s]!++;
    if (this.cursor[s] === this.end[s]) this.stepsLeft--;
    this.lastProgress = performance.now();
    if (s + 1 < stepCount(w)) this.emit(s + 1, c.segment, at, n);
    this.maybeFinish();
  }

  /** The ring encoded one of this op's chunks (the buffer range is no longer needed for it). */
  sent(): void {
    this.pendingSends--;
    this.lastProgress = performance.now();
    this.maybeFinish();
  }

  fail(err: AllreduceError | Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  private emit(step: number, segment: number, offset: number, n: number): void {
    const { opId, ringEpoch, buf, f16 } = this.spec;
    this.pendingSends++;
    this.spec.send({ type: 'allreduceChunk', opId, ringEpoch, step, segment, offset, values: buf.subarray(offset, offset + n), f16 }, this);
  }

  private maybeFinish(): void {
    // Resolve only when every forward has been encoded: after that the caller may reuse the buffer.
    if (this.settled || this.stepsLeft > 0 || this.pendingSends > 0) return;
    this.settled = true;
    this.resolve(this.spec.buf);
  }
}
