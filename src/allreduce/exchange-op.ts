// One allreduce between exactly two ranks, as a direct exchange: each sends its whole buffer
// (cut into segments) to the other, which is both its left and its right neighbour, and once it
// has the other's values and its own are written out, adds them. One step instead of the ring's
// two, the same bytes per link, twice the adds; chosen for small buffers (schedule choice in
// ring-allreduce.ts, crossover measured in bench/RESULTS.md). Both ranks compute x0 + x1 (float
// addition commutes), so they hold the same bits; with f16 each first rounds its own values as
// the wire rounds them, then rounds the sum once more, so the ring's f16 bound holds.
import { divideInPlace, roundToF16InPlace } from './local-math.ts';
import { simdAddInto } from './simd-add.ts';
import { badSegment, checkFlags, OpBase, scheduleFlags, type OpSpec } from './ring-op.ts';
import type { SegmentHeader } from './segment-header.ts';
import type { SegmentTarget } from './segment-receiver.ts';

export class ExchangeOp extends OpBase implements SegmentTarget {
  private readonly theirs: Float32Array;
  private cursor = 0;
  private nextSegment = 0;

  /** `staging`: at least buf.length floats for the peer's values, in the arena (the final add is SIMD: simd-add.ts). */
  constructor(spec: OpSpec, staging: Float32Array) {
    super(spec);
    this.theirs = staging.subarray(0, spec.buf.length);
  }

  start(): void {
    const { opId, ringEpoch, buf, f16, segmentElems, rank } = this.spec;
    const flags = scheduleFlags('exchange', f16);
    for (let at = 0, segment = 0; at < buf.length; at += segmentElems, segment++) {
      const count = Math.min(segmentElems, buf.length - at);
      this.pendingSends++;
      this.spec.send(1 - rank, { ringEpoch, opId, step: 0, flags, segment, offset: at, count, values: buf.subarray(at, at + count), op: this });
    }
    this.maybeFinish();
  }

  describe(): string {
    const { opId, ringEpoch, rank, buf } = this.spec;
    return `op ${opId} (ring epoch ${ringEpoch}, rank ${rank}/2, direct exchange, ${buf.length} elements): received ${this.cursor}, ${this.pendingSends} segment(s) still to send`;
  }

  check(h: SegmentHeader, from: string): void {
    const n = this.spec.buf.length;
    checkFlags(h, from, this.spec.f16, 'exchange');
    if (h.step !== 0) throw badSegment(h, from, 'a direct exchange has only step 0');
    if (h.segment !== this.nextSegment) throw badSegment(h, from, `expected segment ${this.nextSegment}`);
    if (h.offset !== this.cursor) throw badSegment(h, from, `offset ${h.offset}, expected ${this.cursor}`);
    if (h.offset + h.count > n) throw badSegment(h, from, `${h.count} values at offset ${h.offset} overrun the buffer of ${n} (do all ranks pass buffers of ${n} elements?)`);
  }

  take(_h: SegmentHeader, at: number, src: Float32Array, from: number, n: number): void {
    this.theirs.set(src.subarray(from, from + n), at);
    this.lastProgress = performance.now();
  }

  copyTarget(): Float32Array {
    return this.theirs;
  }

  segmentDone(h: SegmentHeader): void {
    this.cursor += h.count;
    this.nextSegment++;
    this.maybeFinish();
  }

  protected maybeFinish(): void {
    // The own values are added to only once they are all written: until then the socket reads them.
    if (this.settled || this.cursor < this.spec.buf.length || this.pendingSends > 0) return;
    const { buf, f16, mean } = this.spec;
    if (f16) roundToF16InPlace(buf);
    simdAddInto(buf, 0, this.theirs, 0, buf.length);
    if (mean) divideInPlace(buf, 2);
    if (f16) roundToF16InPlace(buf);
    this.finish();
  }
}
