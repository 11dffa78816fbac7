// One allreduce operation on one rank, scheduled as a ring: the buffer, how far each step has got,
// and what to do with a segment from the left neighbour (add or copy it, then forward the same
// range to the right). It knows nothing about sockets: the receiver hands it checked segments
// (SegmentTarget) and the ring gives it a function to send with. Also what every schedule's op
// shares (OpBase, the flag check, how a rank cuts its own data into segments).
import { AllreduceProtocolError, type AllreduceError } from './errors.ts';
import { divideInPlace, roundToF16InPlace } from './local-math.ts';
import { blockStart, finalReduceStep, isReduceStep, recvBlock, sendBlock, stepCount } from './schedule.ts';
import { FLAG_EXCHANGE, FLAG_F16, FLAG_HALVING, type SegmentHeader } from './segment-header.ts';
import type { SegmentTarget } from './segment-receiver.ts';
import { simdAddInto } from './simd-add.ts';
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
  /** Queues a segment for rank `to` (the right neighbour, or a halving partner); the sender calls `sent()` once it is written. */
  send: (to: number, seg: OutSegment) => void;
  /** Tells the receivers the op made progress (one waiting for it reads on: halving/doubling's ordered adds). */
  wake: () => void;
}

export type ScheduleKind = 'ring' | 'exchange' | 'halving';
const SCHEDULE_FLAGS: Record<ScheduleKind, number> = { ring: 0, exchange: FLAG_EXCHANGE, halving: FLAG_HALVING };
const SCHEDULE_NAMES: Record<ScheduleKind, string> = { ring: 'the ring schedule', exchange: 'a direct exchange', halving: 'recursive halving/doubling' };
export const scheduleFlags = (kind: ScheduleKind, f16: boolean): number => SCHEDULE_FLAGS[kind] | (f16 ? FLAG_F16 : 0);

const PIPELINE_SEGMENTS = 4;
const MIN_PIPELINE_ELEMS = 16 << 10;

/** The error for a segment that does not fit what the op expects. */
export function badSegment(h: SegmentHeader, from: string, why: string): AllreduceProtocolError {
  return new AllreduceProtocolError(`bad allreduce segment from ${from} for op ${h.opId} step ${h.step} segment ${h.segment} (ring epoch ${h.ringEpoch}): ${why}`);
}

/** Checks the f16 and schedule flags of a segment against the op's (every schedule uses it). */
export function checkFlags(h: SegmentHeader, from: string, f16: boolean, kind: ScheduleKind): void {
  const hf16 = (h.flags & FLAG_F16) !== 0;
  if (hf16 !== f16) throw badSegment(h, from, `values are ${hf16 ? 'f16' : 'f32'} but this op uses ${f16 ? 'f16' : 'f32'} (every rank must pass the same f16 setting)`);
  const theirs = (Object.keys(SCHEDULE_FLAGS) as ScheduleKind[]).find((k) => SCHEDULE_FLAGS[k] === (h.flags & (FLAG_EXCHANGE | FLAG_HALVING)));
  if (theirs !== kind) {
    throw badSegment(h, from, `the segment is for ${theirs ? SCHEDULE_NAMES[theirs] : 'no known schedule (both schedule flags set)'} but this op runs ${SCHEDULE_NAMES[kind]} (do all ranks pass buffers of the same length, and the same exchangeMaxBytes / halvingMinBytes?)`);
  }
}

/**
 * Elements per segment when a rank cuts `len` elements of its own into segments: at least
 * PIPELINE_SEGMENTS of them (down to 64 KiB), so a hop can forward while it receives even when
 * blocks are small: W = 2, 1 MiB took 2.7-2.9 ms with 256 KiB segments against 3.5-6.0 ms with one
 * 512 KiB segment per block (alternating runs, load 12-14).
 */
export function pipelineCut(len: number, segmentElems: number): number {
  return Math.min(segmentElems, Math.max(MIN_PIPELINE_ELEMS, Math.ceil(len / PIPELINE_SEGMENTS)));
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

/** Adds (reduce steps) or copies (all-gather steps) received values into the op's buffer at `at`. */
export function takeValues(op: OpBase, reduce: boolean, at: number, src: Float32Array, from: number, n: number): void {
  if (reduce) simdAddInto(op.spec.buf, at, src, from, n);
  else op.spec.buf.set(src.subarray(from, from + n), at);
  op.lastProgress = performance.now();
}

export class RingOp extends OpBase implements SegmentTarget {
  /** Next expected element offset, end of the block, and next segment index, per wire step. */
  private readonly cursor: number[] = [];
  private readonly end: number[] = [];
  private readonly nextSegment: number[] = [];
  private stepsLeft = 0;

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
    const segmentElems = pipelineCut(hi - lo, this.spec.segmentElems);
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
    checkFlags(h, from, f16, 'ring');
    if (h.step >= stepCount(w)) throw bad(`step out of range 0..${stepCount(w) - 1}`);
    const s = h.step;
    if (h.segment !== this.nextSegment[s]) throw bad(`expected segment ${this.nextSegment[s]}`);
    if (h.offset !== this.cursor[s]) throw bad(`offset ${h.offset}, expected ${this.cursor[s]} (do all ranks pass buffers of ${buf.length} elements?)`);
    if (h.offset + h.count > this.end[s]!) throw bad(`${h.count} values at offset ${h.offset} overrun the block ending at ${this.end[s]} (do all ranks pass buffers of ${buf.length} elements?)`);
  }

  take(h: SegmentHeader, at: number, src: Float32Array, from: number, n: number): void {
    takeValues(this, isReduceStep(h.step, this.spec.workers), at, src, from, n);
  }

  copyTarget(h: SegmentHeader): Float32Array | null {
    return isReduceStep(h.step, this.spec.workers) ? null : this.spec.buf;
  }

  segmentDone(h: SegmentHeader): void {
    const { workers: w, buf, f16 } = this.spec;
    const s = h.step, at = h.offset, n = h.count;
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
    this.spec.send((this.spec.rank + 1) % this.spec.workers, { ringEpoch, opId, step, flags: scheduleFlags('ring', f16), segment, offset, count, values: buf.subarray(offset, offset + count), op: this });
  }

  protected maybeFinish(): void {
    // Resolve only when every forward has been written: after that the caller may reuse the buffer.
    if (this.settled || this.stepsLeft > 0 || this.pendingSends > 0) return;
    this.finish();
  }
}
