// Staging buffers the runner's results come back through. A step maps one of two alternating
// MAP_READ buffers and hands out views of the mapped memory (no copy), so step t's views stay
// valid while step t+1 is recorded and runs and expire when step t+2 takes the buffer back.
// One-off reads (predict, readDense, the optimizer state) go through a third buffer and are
// copied out, since nothing would release them.
import type { Gpu } from '../gpu/device.ts';
import { settleOrLost } from '../gpu/device.ts';
import type { Dispatcher } from '../gpu/dispatch.ts';
import { alignUp } from './step-layout.ts';

/** One of the two alternating MAP_READ buffers a step's results come back through. */
export interface ReadbackSlot { buffer: GPUBuffer | null; mapped: boolean; owner: number }

export class Readback {
  private slots: ReadbackSlot[] = [{ buffer: null, mapped: false, owner: 0 }, { buffer: null, mapped: false, owner: 0 }];
  private oneOff: GPUBuffer | null = null;
  private destroyed = false;

  constructor(private readonly gpu: Gpu, private readonly dispatcher: Dispatcher, private readonly label: string) {}

  /** Step `gen`'s slot: the one the step before last used (its views expire now). */
  take(gen: number): ReadbackSlot {
    const slot = this.slots[gen % 2]!;
    if (slot.mapped) { slot.buffer!.unmap(); slot.mapped = false; }
    return slot;
  }

  /** Makes `slot` hold at least `total` floats (with headroom). */
  size(slot: ReadbackSlot, gen: number, total: number): GPUBuffer {
    if (!slot.buffer || slot.buffer.size < total * 4) {
      slot.buffer?.destroy();
      slot.buffer = this.gpu.device.createBuffer({ label: `${this.label}:readback${gen % 2}`, size: alignUp(Math.ceil(total * 1.25)) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }
    return slot.buffer;
  }

  /** Maps `slot` (the one wait of step `gen`, after its submit) and returns the mapped floats [0, total). */
  async map(slot: ReadbackSlot, gen: number, total: number): Promise<ArrayBuffer> {
    await settleOrLost(this.gpu, slot.buffer!.mapAsync(GPUMapMode.READ, 0, total * 4));
    slot.mapped = true;
    slot.owner = gen;
    return slot.buffer!.getMappedRange(0, total * 4);
  }

  /** Unmaps step `gen`'s views unless a later step already took the slot back (idempotent). */
  release(slot: ReadbackSlot, gen: number): void {
    if (slot.owner === gen && slot.mapped && !this.destroyed) { slot.buffer!.unmap(); slot.mapped = false; }
  }

  /** Copies `reads` into the one-off staging buffer in `enc`, submits, maps and copies out. */
  async copyOut(enc: GPUCommandEncoder, reads: { buf: GPUBuffer; floats: number }[]): Promise<Float32Array[]> {
    const total = Math.max(reads.reduce((s, r) => s + r.floats, 0), 1) * 4;
    if (!this.oneOff || this.oneOff.size < total) {
      this.oneOff?.destroy();
      this.oneOff = this.gpu.device.createBuffer({ label: `${this.label}:staging`, size: Math.max(16, Math.ceil(total * 1.25 / 4) * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }
    let at = 0;
    for (const r of reads) {
      if (r.floats > 0) enc.copyBufferToBuffer(r.buf, 0, this.oneOff, at, r.floats * 4);
      at += r.floats * 4;
    }
    this.dispatcher.submit(enc);
    const staging = this.oneOff;
    await settleOrLost(this.gpu, staging.mapAsync(GPUMapMode.READ, 0, total));
    const all = new Float32Array(staging.getMappedRange(0, total).slice(0));
    staging.unmap();
    const out: Float32Array[] = [];
    at = 0;
    for (const r of reads) {
      out.push(all.subarray(at, at + r.floats));
      at += r.floats;
    }
    return out;
  }

  destroy(): void {
    this.destroyed = true;
    for (const s of this.slots) s.buffer?.destroy();
    this.oneOff?.destroy();
  }
}
