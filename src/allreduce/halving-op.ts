// One allreduce on one rank by recursive halving/doubling (schedule.ts: the steps and partners):
// 2 log2 W steps instead of the ring's 2(W-1), each with a different partner, so segments arrive
// on several data streams at once. Pipelined like the ring: a range is sent on as soon as every
// step it depends on has received it, segment by segment, not step by step:
//   - reduce-scatter step k sends a half that steps 0..k-1 added into: a range goes once all of
//     them have passed it (each step's values arrive in offset order on one stream);
//   - the own block is finished (mean, f16 rounding) once every reduce-scatter step has passed;
//   - all-gather step s sends the own block and what steps m..s-1 copied in, in offset order,
//     each piece as far as it is finished or copied.
// Ranges a rank has sent are never written again by a later reduce step (they are the partner's
// to finish), and what an all-gather step copies over was sent long before (its partner could
// not have finished it otherwise), so the socket never reads a range while it changes.
// The owner finishes its block once and the all-gather only copies: every rank gets its bits.
import { divideInPlace, roundToF16InPlace } from './local-math.ts';
import { badSegment, checkFlags, OpBase, pipelineCut, scheduleFlags, takeValues, type OpSpec } from './ring-op.ts';
import { halvingSteps, type HalvingStep } from './schedule.ts';
import type { SegmentHeader } from './segment-header.ts';
import type { SegmentTarget } from './segment-receiver.ts';

/** A piece of an all-gather step's send range and how it becomes ready: the own block (-1) or a step's copy. */
interface Piece { lo: number; hi: number; step: number }

export class HalvingOp extends OpBase implements SegmentTarget {
  private readonly steps: HalvingStep[];
  private readonly m: number;
  /** Per step: next element expected from the partner and its segment index; next element to send and its segment index. */
  private readonly recvAt: number[];
  private readonly nextIn: number[];
  private readonly sendAt: number[];
  private readonly nextOut: number[];
  /** All-gather steps' send ranges as pieces in offset order (empty for reduce-scatter steps). */
  private readonly pieces: Piece[][];
  private readonly ownLo: number;
  private readonly ownHi: number;
  /** The own block is finished (complete sum, mean, f16) up to here. */
  private finishedTo: number;
  private readonly cut: number;

  /** `peerIds`: node id of every rank (to check which stream a segment came in on). */
  constructor(spec: OpSpec, private readonly peerIds: readonly string[]) {
    super(spec);
    const { rank, workers: w, buf } = spec;
    this.steps = halvingSteps(rank, w, buf.length);
    this.m = this.steps.length / 2;
    this.recvAt = this.steps.map((s) => s.recvLo);
    this.nextIn = this.steps.map(() => 0);
    this.sendAt = this.steps.map((s) => s.sendLo);
    this.nextOut = this.steps.map(() => 0);
    const last = this.steps[this.m - 1]!;
    this.ownLo = last.recvLo;
    this.ownHi = last.recvHi;
    this.finishedTo = this.ownLo;
    this.pieces = this.steps.map((s, i) => {
      if (s.reduce) return [];
      const ps: Piece[] = [{ lo: this.ownLo, hi: this.ownHi, step: -1 }];
      for (let t = this.m; t < i; t++) ps.push({ lo: this.steps[t]!.recvLo, hi: this.steps[t]!.recvHi, step: t });
      return ps.filter((p) => p.hi > p.lo).sort((a, b) => a.lo - b.lo);
    });
    // Own data is cut as the ring cuts a block; forwarded ranges go as they become ready.
    this.cut = pipelineCut(this.steps[0]!.sendHi - this.steps[0]!.sendLo, spec.segmentElems);
  }

  start(): void {
    this.advance();
    this.maybeFinish();
  }

  describe(): string {
    const { opId, ringEpoch, rank, workers, buf } = this.spec;
    const waiting = this.steps.map((s, i) => (this.recvAt[i]! < s.recvHi ? `${i} (from rank ${s.peer})` : '')).filter(Boolean);
    return `op ${opId} (ring epoch ${ringEpoch}, rank ${rank}/${workers}, halving/doubling, ${buf.length} elements): ` +
      (waiting.length ? `waiting for step${waiting.length > 1 ? 's' : ''} ${waiting.join(', ')}` : `all received, ${this.pendingSends} segment(s) still to send`);
  }

  check(h: SegmentHeader, from: string): void {
    const bad = (why: string) => badSegment(h, from, why);
    checkFlags(h, from, this.spec.f16, 'halving');
    if (h.step >= this.steps.length) throw bad(`step out of range 0..${this.steps.length - 1}`);
    const s = this.steps[h.step]!, i = h.step;
    const want = this.peerIds[s.peer]!;
    if (from !== want) throw bad(`step ${i} of this rank comes from ${want} (rank ${s.peer}), not from ${from} (a mis-tagged segment, or ranks disagree on the ring)`);
    if (h.segment !== this.nextIn[i]) throw bad(`expected segment ${this.nextIn[i]}`);
    if (h.offset !== this.recvAt[i]) throw bad(`offset ${h.offset}, expected ${this.recvAt[i]} (do all ranks pass buffers of ${this.spec.buf.length} elements?)`);
    if (h.offset + h.count > s.recvHi) throw bad(`${h.count} values at offset ${h.offset} overrun the range ending at ${s.recvHi} (do all ranks pass buffers of ${this.spec.buf.length} elements?)`);
  }

  /**
   * A reduce step's segment is added only once every earlier step has added into its range, so each
   * element's sum is taken in step order whatever order the streams deliver in: the same bits run
   * to run (as the ring), not only on every rank.
   */
  ready(h: SegmentHeader): boolean {
    const s = this.steps[h.step]!;
    return !s.reduce || this.reducedTo(h.step, h.offset, h.offset + h.count) === h.offset + h.count;
  }

  take(h: SegmentHeader, at: number, src: Float32Array, from: number, n: number): void {
    takeValues(this, this.steps[h.step]!.reduce, at, src, from, n);
  }

  copyTarget(h: SegmentHeader): Float32Array | null {
    return this.steps[h.step]!.reduce ? null : this.spec.buf;
  }

  segmentDone(h: SegmentHeader): void {
    this.recvAt[h.step]! += h.count;
    this.nextIn[h.step]!++;
    this.advance();
    this.maybeFinish();
    this.spec.wake(); // a later step's segment may be waiting for this range
  }

  /** Where every reduce-scatter step before `k` has passed, within [lo, hi) (they all cover it). */
  private reducedTo(k: number, lo: number, hi: number): number {
    let to = hi;
    for (let j = 0; j < k; j++) to = Math.min(to, Math.max(lo, this.recvAt[j]!));
    return to;
  }

  /** How far step `i` may send: its range is ready up to here. */
  private readyTo(i: number): number {
    const s = this.steps[i]!;
    if (s.reduce) return this.reducedTo(i, s.sendLo, s.sendHi);
    for (const p of this.pieces[i]!) {
      const to = p.step < 0 ? this.finishedTo : this.recvAt[p.step]!;
      if (to < p.hi) return to;
    }
    return s.sendHi;
  }

  /** Finishes what the reduce-scatter completed of the own block, then sends whatever became ready. */
  private advance(): void {
    const { buf, mean, f16, workers: w } = this.spec;
    const done = this.reducedTo(this.m, this.ownLo, this.ownHi);
    if (done > this.finishedTo) {
      const mine = buf.subarray(this.finishedTo, done);
      if (mean) divideInPlace(mine, w);
      if (f16) roundToF16InPlace(mine);
      this.finishedTo = done;
    }
    for (let i = 0; i < this.steps.length; i++) {
      const to = this.readyTo(i);
      while (this.sendAt[i]! < to) {
        const at = this.sendAt[i]!, count = Math.min(this.cut, to - at);
        this.emit(i, at, count);
        this.sendAt[i] = at + count;
      }
    }
  }

  private emit(i: number, offset: number, count: number): void {
    const { opId, ringEpoch, buf, f16 } = this.spec;
    this.pendingSends++;
    this.spec.send(this.steps[i]!.peer, {
      ringEpoch, opId, step: i, flags: scheduleFlags('halving', f16), segment: this.nextOut[i]!++, offset, count, values: buf.subarray(offset, offset + count), op: this,
    });
  }

  protected maybeFinish(): void {
    if (this.settled || this.pendingSends > 0) return;
    for (let i = 0; i < this.steps.length; i++) if (this.recvAt[i]! < this.steps[i]!.recvHi || this.sendAt[i]! < this.steps[i]!.sendHi) return;
    this.finish();
  }
}
