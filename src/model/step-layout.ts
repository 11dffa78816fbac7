// Where a training step's data sits on the GPU, and packing it there. Every per-step input
// (features, pulled rows, index structures, the table directory) goes at a fixed offset of one
// upload buffer, written from one CPU mirror with one queue.writeBuffer; the table gradients sit
// in one row-gradient buffer with the same per-table spans as the rows. Kept apart from the
// runner so that sizing and packing (capacities, alignment, the directory's word layout) is one
// piece of code the recording side only reads offsets from. The dense vector's padded GPU layout
// (each parameter at an aligned offset) is converted here too (padDense, unpadDense).
//
// The mirror's first 2 * densePadded elements are the runner's dense staging (a pending setDense,
// then a pending update's gradient); the per-step regions follow.
import type { Gpu } from '../gpu/device.ts';
import type { BufferArg } from '../gpu/dispatch.ts';
import { STORAGE_USAGE } from '../gpu/buffers.ts';
import type { PreparedTable } from './batch-prep.ts';
import { denseOffsetName, evalExpr, shapeSize, stepScope, type ModelSpec } from './model-spec.ts';

export interface StepInputs {
  /** Batch size. */
  B: number;
  /** One f32 array per spec input (dense features, labels, ...), sized as declared. */
  inputs: Record<string, Float32Array>;
  /** Per table (spec order): the prepared batch and its pulled unique rows ([U, dim]). */
  tables: { prep: PreparedTable; rows: Float32Array }[];
}

/** A dense parameter: its offset in the flat (unpadded) vector and in the padded GPU buffer. */
export interface DenseSlot { name: string; offset: number; size: number; gpuOffset: number }

/** The padded GPU layout of the flat dense vector `flat` written into `out` (zero between parameters). */
export function padDense(slots: DenseSlot[], flat: Float32Array, out: Float32Array): Float32Array {
  out.fill(0);
  for (const p of slots) out.set(flat.subarray(p.offset, p.offset + p.size), p.gpuOffset);
  return out;
}

/** The flat dense vector (`length` floats) from its padded GPU layout, times `scale` (one pass either way). */
export function unpadDense(slots: DenseSlot[], length: number, padded: Float32Array, scale = 1): Float32Array {
  const out = new Float32Array(length);
  for (const p of slots) {
    const src = padded.subarray(p.gpuOffset, p.gpuOffset + p.size);
    if (scale === 1) out.set(src, p.offset);
    else for (let j = 0; j < p.size; j++) out[p.offset + j] = src[j]! * scale;
  }
  return out;
}

/** A region of the upload buffer or of the row-gradient buffer, in elements of 4 bytes. */
export interface Span { at: number; len: number }

/** Elements per alignment unit: every region starts at a 256-byte (storage offset) boundary. */
export const ALIGN = 64;
export const alignUp = (n: number, a = ALIGN) => Math.ceil(n / a) * a;
/** Every table's region is at least one unit long so that no binding has size 0. */
const regionLen = (n: number) => Math.max(ALIGN, alignUp(n));
const DIR_WORDS = 8;

/** Where this step's data sits (elements), in the upload buffer and in the row-gradient buffer. */
export interface StepLayout {
  B: number;
  counts: { unique: number; nnz: number }[];
  scope: Record<string, number>;
  inputs: Map<string, Span>;
  /** Per table: its rows (and gradients, relative to the row-gradient buffer), index (= csrItems), offsets, csrOffsets. */
  tables: { rows: Span; index: Span; offsets: Span; csrOffsets: Span }[];
  /** The super-regions in the upload buffer (absolute element offsets, capacity length). */
  region: Record<'dir' | 'offsets' | 'index' | 'csrItems' | 'csrOffsets' | 'rows', Span>;
  /** Elements of the row-gradient buffer in use (last table's end). */
  gradsUsed: number;
  /** End (elements) of the part of the upload buffer this step writes. */
  dataEnd: number;
}

const grow = (cur: number, need: number): number => (need <= cur ? cur : alignUp(Math.ceil(need * 1.25)));

/** The upload buffer, its CPU mirror, the row-gradient and gradSplits buffers, and their capacities. */
export class StepUpload {
  upload: GPUBuffer | null = null;
  mirror = new ArrayBuffer(0);
  f32 = new Float32Array(0);
  u32 = new Uint32Array(0);
  gradsBuf: GPUBuffer | null = null;
  gradSplitsBuf: GPUBuffer | null = null;
  private gradSplitsCount = 0;
  /** Capacities (elements) of the growing regions; grown with headroom, never shrunk. */
  private cap = { inputs: new Map<string, number>(), dir: 0, offsets: 0, index: 0, csrOffsets: 0, rows: 0 };

  constructor(private readonly gpu: Gpu, private readonly spec: ModelSpec, private readonly dense: DenseSlot[], private readonly densePadded: number) {}

  ensureMirror(elems: number): void {
    if (this.mirror.byteLength >= elems * 4) return;
    const next = new ArrayBuffer(alignUp(Math.ceil(elems * 1.25)) * 4);
    new Uint8Array(next).set(new Uint8Array(this.mirror)); // staged dense values survive growth
    this.mirror = next;
    this.f32 = new Float32Array(next);
    this.u32 = new Uint32Array(next);
  }

  /** Writes mirror elements [from, to) to the upload buffer (created for the dense staging if none yet). */
  writeStaged(from: number, to: number): GPUBuffer {
    if (!this.upload) {
      const size = 2 * this.densePadded * 4;
      this.upload = this.gpu.device.createBuffer({ label: `${this.spec.name}:upload`, size, usage: STORAGE_USAGE });
    }
    this.gpu.device.queue.writeBuffer(this.upload, from * 4, this.mirror, from * 4, (to - from) * 4);
    return this.upload;
  }

  /** Sizes this step's regions (growing capacities when needed) and assigns every offset; `gradScale` is the scope's (RunnerStepOptions.gradScale). */
  layout(inp: StepInputs, gradScale = 1): StepLayout {
    const { spec } = this;
    const { B } = inp;
    if (!Number.isInteger(B) || B < 0) throw new Error(`model ${spec.name}: batch size ${B}`);
    if (inp.tables.length !== spec.tables.length) throw new Error(`model ${spec.name} has ${spec.tables.length} tables, the batch has ${inp.tables.length}`);
    const counts = inp.tables.map((t) => ({ unique: t.prep.unique.length, nnz: t.prep.inverse.length }));
    const scope = stepScope(spec, B, counts);
    const splits = spec.gradSplits === undefined ? 1 : evalExpr(spec.gradSplits, scope, `model ${spec.name} gradSplits`);
    if (!Number.isInteger(splits) || splits < 1) throw new Error(`model ${spec.name}: gradSplits gives ${splits}, need an integer >= 1`);
    scope.splits = splits;
    scope.denseStride = this.densePadded;
    scope.gradScale = gradScale;
    for (const p of this.dense) scope[denseOffsetName(p.name)] = p.gpuOffset;

    spec.tables.forEach((t, i) => {
      const { prep, rows } = inp.tables[i];
      const U = prep.unique.length;
      if (rows.length !== U * t.dim) throw new Error(`table ${t.name}: ${rows.length} row values for ${U} unique rows of dim ${t.dim}`);
      if (prep.bagOffsets.length !== B + 1) throw new Error(`table ${t.name}: bag offsets for ${prep.bagOffsets.length - 1} samples, batch has ${B}`);
      if (prep.csrOffsets.length !== U + 1 || prep.csrItems.length !== prep.inverse.length) throw new Error(`table ${t.name}: CSR of ${prep.csrOffsets.length - 1} rows and ${prep.csrItems.length} items for ${U} unique rows and ${prep.inverse.length} occurrences`);
    });
    const inputLens = new Map<string, number>();
    for (const d of spec.inputs) {
      const data = inp.inputs[d.name];
      const n = shapeSize(d.shape, scope, `input ${d.name}`);
      if (!data || data.length !== n) throw new Error(`model ${spec.name}: input ${d.name} needs ${n} floats, got ${data ? data.length : 'none'}`);
      inputLens.set(d.name, n);
    }

    // Per-table spans inside each super-region (tight, every table at an aligned start).
    const tables: StepLayout['tables'] = [];
    const used = { offsets: 0, index: 0, csrOffsets: 0, rows: 0 };
    spec.tables.forEach((t, i) => {
      const { unique, inverse } = inp.tables[i].prep;
      const s = {
        rows: { at: used.rows, len: regionLen(unique.length * t.dim) },
        index: { at: used.index, len: regionLen(inverse.length) },
        offsets: { at: used.offsets, len: regionLen(B + 1) },
        csrOffsets: { at: used.csrOffsets, len: regionLen(unique.length + 1) },
      };
      used.rows += s.rows.len; used.index += s.index.len; used.offsets += s.offsets.len; used.csrOffsets += s.csrOffsets.len;
      tables.push(s);
    });

    // Capacities: a layout change moves the regions (new bind groups), so grow with headroom.
    const c = this.cap;
    for (const [name, n] of inputLens) c.inputs.set(name, grow(c.inputs.get(name) ?? 0, regionLen(n)));
    c.dir = grow(c.dir, regionLen(spec.tables.length * DIR_WORDS));
    c.offsets = grow(c.offsets, Math.max(used.offsets, ALIGN));
    c.index = grow(c.index, Math.max(used.index, ALIGN));
    c.csrOffsets = grow(c.csrOffsets, Math.max(used.csrOffsets, ALIGN));
    c.rows = grow(c.rows, Math.max(used.rows, ALIGN));

    // Order: dense staging, inputs, dir, offsets, index, csrItems, csrOffsets, rows. The rows come
    // last so that their unused capacity is never uploaded.
    let at = 2 * this.densePadded;
    const inputs = new Map<string, Span>();
    for (const d of spec.inputs) { const len = c.inputs.get(d.name)!; inputs.set(d.name, { at, len }); at += len; }
    const take = (len: number): Span => { const s = { at, len }; at += len; return s; };
    const region = { dir: take(c.dir), offsets: take(c.offsets), index: take(c.index), csrItems: take(c.index), csrOffsets: take(c.csrOffsets), rows: take(c.rows) };
    const total = at;
    if (!this.upload || this.upload.size < total * 4) {
      // Work already submitted keeps the old buffer alive until it finishes. Staged dense values
      // live in the mirror and are written with the next GPU work.
      this.upload?.destroy();
      this.upload = this.gpu.device.createBuffer({ label: `${spec.name}:upload`, size: total * 4, usage: STORAGE_USAGE });
    }
    this.ensureMirror(total);
    if (!this.gradsBuf || this.gradsBuf.size < c.rows * 4) {
      this.gradsBuf?.destroy();
      this.gradsBuf = this.gpu.device.createBuffer({ label: `${spec.name}:tables.grad`, size: c.rows * 4, usage: STORAGE_USAGE });
    }
    if (spec.gradSplits !== undefined && (!this.gradSplitsBuf || this.gradSplitsCount < splits)) {
      this.gradSplitsBuf?.destroy();
      this.gradSplitsCount = splits;
      // Zero outside the parameters forever: kernels write only their parameter's range.
      this.gradSplitsBuf = this.gpu.device.createBuffer({ label: `${spec.name}:dense.gradSplits`, size: splits * this.densePadded * 4, usage: STORAGE_USAGE });
    }
    return { B, counts, scope, inputs, tables, region, gradsUsed: used.rows, dataEnd: region.rows.at + used.rows };
  }

  /** Packs inputs, rows, index structures and the table directory into the mirror; one writeBuffer. */
  writeInputs(inp: StepInputs, L: StepLayout): void {
    const { f32, u32 } = this;
    for (const d of this.spec.inputs) f32.set(inp.inputs[d.name], L.inputs.get(d.name)!.at);
    const R = L.region;
    let prefix = 0;
    this.spec.tables.forEach((t, i) => {
      const { prep, rows } = inp.tables[i];
      const s = L.tables[i];
      f32.set(rows, R.rows.at + s.rows.at);
      u32.set(prep.inverse, R.index.at + s.index.at);
      u32.set(prep.csrItems, R.csrItems.at + s.index.at);
      u32.set(prep.bagOffsets, R.offsets.at + s.offsets.at);
      u32.set(prep.csrOffsets, R.csrOffsets.at + s.csrOffsets.at);
      const d = R.dir.at + i * DIR_WORDS;
      u32[d] = s.rows.at; u32[d + 1] = s.index.at; u32[d + 2] = s.offsets.at; u32[d + 3] = s.csrOffsets.at;
      u32[d + 4] = prep.unique.length; u32[d + 5] = prefix; u32[d + 6] = prep.inverse.length; u32[d + 7] = t.dim;
      prefix += prep.unique.length;
    });
    const start = 2 * this.densePadded;
    this.gpu.device.queue.writeBuffer(this.upload!, start * 4, this.mirror, start * 4, (L.dataEnd - start) * 4);
  }

  /** The upload or row-gradient span a binding name of the tables or inputs stands for (undefined: not one of them). */
  resolve(name: string, L: StepLayout): BufferArg | undefined {
    const up = this.upload!;
    const span = (s: Span): BufferArg => ({ buffer: up, offset: s.at * 4, size: s.len * 4 });
    const input = L.inputs.get(name);
    if (input) return span(input);
    const dot = name.lastIndexOf('.');
    const head = name.slice(0, dot), tail = name.slice(dot + 1);
    if (head === 'tables') {
      const R = L.region;
      switch (tail) {
        case 'rows': case 'index': case 'offsets': case 'csrOffsets': case 'csrItems': case 'dir': return span(R[tail]);
        case 'grad': return this.gradsBuf!;
      }
    }
    const ti = this.spec.tables.findIndex((t) => t.name === head);
    if (ti >= 0) {
      const s = L.tables[ti], R = L.region;
      switch (tail) {
        case 'rows': return span({ at: R.rows.at + s.rows.at, len: s.rows.len });
        case 'index': return span({ at: R.index.at + s.index.at, len: s.index.len });
        case 'csrItems': return span({ at: R.csrItems.at + s.index.at, len: s.index.len });
        case 'offsets': return span({ at: R.offsets.at + s.offsets.at, len: s.offsets.len });
        case 'csrOffsets': return span({ at: R.csrOffsets.at + s.csrOffsets.at, len: s.csrOffsets.len });
        case 'grad': return { buffer: this.gradsBuf!, offset: s.rows.at * 4, size: s.rows.len * 4 };
      }
    }
    return undefined;
  }

  destroy(): void {
    this.upload?.destroy();
    this.gradsBuf?.destroy();
    this.gradSplitsBuf?.destroy();
  }
}
