// One allreduce operation on one rank, scheduled as a ring: the buffer, how far each step has got,
// and what to do with a segment from the left neighbour (add or copy it, then forward the same
// range to the right). It knows nothing about sockets: the receiver hands it checked segments
// (SegmentTarget) and the ring gives it a function to send with.
import { AllreduceProtocolError, type AllreduceError } from './errors.ts';
import { divideInPlace, roundToF16InPlace } from './local-math.ts';
import { blockStart, finalReduceStep, isReduceStep, recvBlock, sendBlock, stepCount } from './schedule.ts';
import { FLAG_EXCHANGE, FLAG_F16, type SegmentHeader } from './segment-header.ts';
import type { SegmentTarget } from './segment-receiver.ts';
import type { SimdAdder } from './simd-add.ts';
import type { OutSegment } from './segment-sender.ts';

export interface OpSpec {
  opId: number;
  ringEpoch: number;
  rank: number;
  workers: number;
  buf: Float32Array;
  mean: boolean;
  f16: boolean;
  /** Elements per segment this rank cuts its own data into (forwarded segments keep their size). */
  segmentElems: number;
  /** Queues a segment for the right neighbour; the sender calls `sent()` once it is written. */
  send: (seg: OutSegment) => void;
}

const PIPELINE_SEGMENTS = 4;
const MIN_PIPELINE_ELEMS = 16 << 10;

/** The error for a segment that does not fit what the op expects. */
export function badSegment(h: SegmentHeader, from: string, why: string): AllreduceProtocolError {
  return new AllreduceProtocolError(`bad allreduce segment from ${from} for op ${h.opId} step ${h.step} segment ${h.segment} (ring epoch ${h.ringEpoch}): ${why}`);
}

/** Checks the f16 and schedule flags of a segment against the op's (both schedules use it). */
export function checkFlags(h: SegmentHeader, from: string, f16: boolean, exchange: boolean): void {
  const hf16 = (h.flags & FLAG_F16) !== 0, hx = (h.flags & FLAG_EXCHANGE) !== 0;
  if (hf16 !== f16) throw badSegment(h, from, `values are ${hf16 ? 'f16' : 'f32'} but this op uses ${f16 ? 'f16' : 'f32'} (every rank must pass the same f16 setting)`);
  if (hx !== exchange) throw badSegment(h, from, `the segment is for ${hx ? 'a direct exchange' : 'the ring schedule'} but this op runs ${exchange ? 'a direct exchange' : 'the ring'} (do all ranks pass buffers of the same length?)`);
}

/**
 * What both schedules share: the promise the caller awaits, settling once, the idle clock the
 * timeout reads, and the count of segments handed to the sender and not yet written.
 */
export abstract class OpBase {
  readonly done: Promise<Float32Array>;
  settled = false;
  /** performance.now() of the last segment received or sent: the idle timeout counts from here. */
  lastProgress = performance.now();
  protected pendingSends = 0;
  private resolveDone!: (b: Float32Array) => void;
  private rejectDone!: (e: Error) => void;

  constructor(readonly spec: OpSpec) {
    this.done = new Promise((res, rej) => { this.resolveDone = res; this.rejectDone = rej; });
  }

  get opId(): number { return this.spec.opId; }

  /** The sender wrote one of this op's segments (the buffer range is no longer needed for it). */
  sent(): void {
    this.pendingSends--;
    this.lastProgress = performance.now();
    this.maybeFinish();
  }

  fail(err: AllreduceError | Error): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectDone(err);
  }

  protected finish(): void {
    this.settled = true;
    this.resolveDone(this.spec.buf);
  }

  protected abstract maybeFinish(): void;
}

export class RingOp extends OpBase implements SegmentTarget {
  /** Next expected element offset, end of the block, and next segment index, per wire step. */
  private readonly cursor: number[] = [];
  private readonly end: number[] = [];
  private readonly nextSegment: number[] = [];
  private stepsLeft = 0;
  /** The segment being received: its step, where it goes, its length, values taken so far. */
  private inStep = 0;
  private inAt = 0;
  private inCount = 0;
  private inTaken = 0;

  constructor(spec: OpSpec) {
    super(spec);
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

  /** Sends this rank's own block as step 0, cut into segments. */
  start(): void {
    const { rank, workers: w, buf } = this.spec;
    const b = sendBlock(rank, 0, w);
    const lo = blockStart(b, buf.length, w), hi = blockStart(b + 1, buf.length, w);
    // At least PIPELINE_SEGMENTS segments per block (down to 64 KiB), so a hop can forward while
    // it receives even when blocks are small: W = 2, 1 MiB took 2.7-2.9 ms with 256 KiB segments
    // against 3.5-6.0 ms with one 512 KiB segment per block (alternating runs, load 12-14).
    const segmentElems = Math.min(this.spec.segmentElems, Math.max(MIN_PIPELINE_ELEMS, Math.ceil((hi - lo) / PIPELINE_SEGMENTS)));
    for (let at = lo, seg = 0; at < hi; at += segmentElems, seg++) this.emit(0, seg, at, Math.min(segmentElems, hi - at));
    this.maybeFinish();
  }

  /** Progress so far, for error messages. */
  describe(): string {
    const waiting = this.cursor.map((c, s) => (c < this.end[s]! ? s : -1)).filter((s) => s >= 0);
    return `op ${this.opId} (ring epoch ${this.spec.ringEpoch}, rank ${this.spec.rank}/${this.spec.workers}, ${this.spec.buf.length} elements): ` +
      (waiting.length ? `waiting for step${waiting.length > 1 ? 's' : ''} ${waiting.join(',')}` : `all received, ${this.pendingSends} segment(s) still to send`);
  }

  /** Checks a segment's header against what the op expects next (SegmentTarget). */
  check(h: SegmentHeader, from: string): void {
    const { workers: w, buf, f16 } = this.spec;
    const bad = (why: string) => badSegment(h, from, why);
    checkFlags(h, from, f16, false);
    if (h.step >= stepCount(w)) throw bad(`step out of range 0..${stepCount(w) - 1}`);
    const s = h.step;
    if (h.segment !== this.nextSegment[s]) throw bad(`expected segment ${this.nextSegment[s]}`);
    if (h.offset !== this.cursor[s]) throw bad(`offset ${h.offset}, expected ${this.cursor[s]} (do all ranks pass buffers of ${buf.length} elements?)`);
    if (h.offset + h.count > this.end[s]!) throw bad(`${h.count} values at offset ${h.offset} overrun the block ending at ${this.end[s]} (do all ranks pass buffers of ${buf.length} elements?)`);
    this.inStep = s;
    this.inAt = h.offset;
    this.inCount = h.count;
    this.inTaken = 0;
  }

  take(src: Float32Array, from: number, n: number, adder: SimdAdder): void {
    const at = this.inAt + this.inTaken;
    if (isReduceStep(this.inStep, this.spec.workers)) adder.addInto(this.spec.buf, at, src, from, n);
    else this.spec.buf.set(src.subarray(from, from + n), at);
    this.inTaken += n;
    this.lastProgress = performance.now();
  }

  segmentDone(): void {
    const { workers: w, buf, f16 } = this.spec;
    const s = this.inStep, at = this.inAt, n = this.inCount;
    if (s === finalReduceStep(w)) {
      // This range now holds the complete sum and this rank owns it: finish it here, once.
      const mine = buf.subarray(at, at + n);
      if (this.spec.mean) divideInPlace(mine, w);
      if (f16) roundToF16InPlace(mine);
    }
    this.cursor[s]! += n;
    if (this.cursor[s] === this.end[s]) this.stepsLeft--;
    if (s + 1 < stepCount(w)) this.emit(s + 1, this.nextSegment[s]!, at, n);
    this.nextSegment[s]!++;
    this.maybeFinish();
  }

  private emit(step: number, segment: number, offset: number, count: number): void {
    const { opId, ringEpoch, buf, f16 } = this.spec;
    this.pendingSends++;
    this.spec.send({ ringEpoch, opId, step, flags: f16 ? FLAG_F16 : 0, segment, offset, count, values: buf.subarray(offset, offset + count), op: this });
  }

  protected maybeFinish(): void {
    // Resolve only when every forward has been written: after that the caller may reuse the buffer.
    if (this.settled || this.stepsLeft > 0 || this.pendingSends > 0) return;
    this.finish();
  }
}
