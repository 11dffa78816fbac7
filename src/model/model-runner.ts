// Executes a ModelSpec on one GPU. A training step is ONE command encoder, ONE queue submit and
// ONE CPU wait:
//
//   upload   every per-step input (features, pulled rows, index structures, the table directory)
//            packed at fixed offsets of one upload buffer: one queue.writeBuffer, plus one for a
//            pending dense update's gradient and one for the dispatch params (Dispatcher arena)
//   encoder  [the pending dense-parameter copy (setDense)] -> one compute pass: [the pending dense
//            update (applyDenseUpdate)], forward, loss, backward, [this step's own dense update
//            (step(..., { denseUpdate }))] -> copies of the loss, the dense gradient and every
//            table's row gradients into one of two MAP_READ staging buffers
//   wait     mapAsync of that staging buffer (no onSubmittedWorkDone before it)
//
// The row gradients come back as views of the mapped staging memory (no copy): valid until the
// caller calls release() or until the step after next starts (the two staging buffers alternate),
// so the push of step t can read them while step t+1 is recorded and runs.
//
// Dense parameters live in one flat GPU buffer (each parameter at an offset aligned for storage
// binding) with a gradient buffer of the same layout; the CPU sees them as the unpadded flat
// vector in declaration order (denseSizes()).
import { mulberry32 } from '../util/hash.ts';
import type { Gpu } from '../gpu/device.ts';
import { settleOrLost } from '../gpu/device.ts';
import { KernelRegistry } from '../gpu/kernel-registry.ts';
import { Dispatcher, type BufferArg } from '../gpu/dispatch.ts';
import { BufferPool, STORAGE_USAGE, writeView } from '../gpu/buffers.ts';
import type { PreparedTable } from './batch-prep.ts';
import {
  denseOffsetName, denseSizes, evalExpr, shapeSize, stepScope, validateSpec,
  type KernelCall, type ModelSpec,
} from './model-spec.ts';

export interface StepInputs {
  /** Batch size. */
  B: number;
  /** One f32 array per spec input (dense features, labels, ...), sized as declared. */
  inputs: Record<string, Float32Array>;
  /** Per table (spec order): the prepared batch and its pulled unique rows ([U, dim]). */
  tables: { prep: PreparedTable; rows: Float32Array }[];
}

export interface RunnerStepOptions {
  /** Fill every output, activation and gradient buffer with NaN first (tests). */
  poison?: boolean;
  /**
   * Apply the local dense optimizer to this step's own dense gradient in the same encoder, right
   * after the backward pass (when nothing, such as an allreduce, has to combine it first).
   */
  denseUpdate?: DenseOptimizer;
}

export interface StepTimings {
  /** Packing the inputs and the writeBuffer calls. */
  upload: number;
  /** Recording, submit, and the one wait until the readback is mapped. */
  compute: number;
  /** Making the result views (and the unpadded dense-gradient copy). */
  download: number;
}

export interface StepResult {
  /** Mean loss over the batch. */
  loss: number;
  /**
   * Per table (spec order): one gradient row per unique row, [U, dim] (of the batch-mean loss).
   * Views of mapped staging memory: valid until release() or until the step after next starts;
   * they may be scaled in place (the writes are not sent back to the GPU).
   */
  tableGrads: Float32Array[];
  /** Flat dense gradient (of the batch-mean loss), unpadded, declaration order (a copy). */
  denseGrads: Float32Array;
  ms: StepTimings;
  /** Unmaps the staging memory behind tableGrads (idempotent; the step after next does it anyway). */
  release(): void;
}

export type DenseOptimizer = (
  | { kind: 'sgd'; lr: number; weightDecay?: number }
  | { kind: 'adagrad'; lr: number; eps?: number; weightDecay?: number }
  | { kind: 'adam'; lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decoupled?: boolean }
) & {
  /** Multiplies the gradient first (e.g. local batch mean -> share of the global batch). */
  gradScale?: number;
};

interface DenseSlot { name: string; offset: number; size: number; gpuOffset: number }

/** A region of the upload buffer or of the row-gradient buffer, in elements of 4 bytes. */
interface Span { at: number; len: number }

const now = () => performance.now();
/** Elements per alignment unit: every region starts at a 256-byte (storage offset) boundary. */
const ALIGN = 64;
const alignUp = (n: number, a = ALIGN) => Math.ceil(n / a) * a;
/** Every table's region is at least one unit long so that no binding has size 0. */
const regionLen = (n: number) => Math.max(ALIGN, alignUp(n));
const DIR_WORDS = 8;

/** The spec's initial dense vector (flat, unpadded), deterministic in `seed`. */
export function initDense(spec: ModelSpec, seed = 1): Float32Array {
  const sizes = denseSizes(spec);
  const out = new Float32Array(sizes.reduce((s, p) => s + p.size, 0));
  const r = mulberry32(seed);
  spec.dense.forEach((p, i) => {
    const { offset, size } = sizes[i];
    const scale = p.init.scale ?? 0;
    for (let j = 0; j < size; j++) {
      if (p.init.kind === 'zeros') out[offset + j] = 0;
      else if (p.init.kind === 'uniform') out[offset + j] = (2 * r() - 1) * scale;
      else out[offset + j] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) * scale;
    }
  });
  return out;
}

/** Where this step's data sits (elements), in the upload buffer and in the row-gradient buffer. */
interface StepLayout {
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

interface PendingUpdate { name: string; params: Record<string, number>; slots: GPUBuffer[] }

/** One of the two alternating MAP_READ buffers a step's results come back through. */
interface ReadbackSlot { buffer: GPUBuffer | null; mapped: boolean; owner: number }

export class ModelRunner {
  readonly registry: KernelRegistry;
  readonly dispatcher: Dispatcher;
  readonly pool: BufferPool;
  readonly denseLength: number;
  private readonly dense: DenseSlot[];
  private readonly densePadded: number;
  private readonly denseBuf: GPUBuffer;
  private readonly denseGradBuf: GPUBuffer;
  private gradSplitsBuf: GPUBuffer | null = null;
  private gradSplitsCount = 0;
  private optimSlots = new Map<string, GPUBuffer>();
  private adamStep = 0;

  // The upload buffer and its CPU mirror. Elements [0, densePadded) hold a pending setDense,
  // [densePadded, 2*densePadded) a pending update's gradient, then the per-step data regions.
  private upload: GPUBuffer | null = null;
  private mirror = new ArrayBuffer(0);
  private f32 = new Float32Array(0);
  private u32 = new Uint32Array(0);
  /** Capacities (elements) of the growing regions; grown with headroom, never shrunk. */
  private cap = { inputs: new Map<string, number>(), dir: 0, offsets: 0, index: 0, csrOffsets: 0, rows: 0 };
  private gradsBuf: GPUBuffer | null = null;

  private pendingSet = false;
  private pendingUpdate: PendingUpdate | null = null;

  private slots: ReadbackSlot[] = [{ buffer: null, mapped: false, owner: 0 }, { buffer: null, mapped: false, owner: 0 }];
  private stepCount = 0;
  private oneOff: GPUBuffer | null = null;
  private destroyed = false;

  private constructor(readonly gpu: Gpu, readonly spec: ModelSpec, registry?: KernelRegistry) {
    validateSpec(spec);
    this.registry = registry ?? new KernelRegistry(gpu, spec.kernelDirs);
    this.dispatcher = new Dispatcher(gpu, this.registry, { slots: 256 });
    this.pool = new BufferPool(gpu, spec.name);
    const align = Math.max(ALIGN, gpu.limits.minStorageBufferOffsetAlignment / 4);
    let at = 0;
    this.dense = denseSizes(spec).map((p) => {
      const slot = { ...p, gpuOffset: at };
      at += Math.ceil(Math.max(p.size, 1) / align) * align;
      return slot;
    });
    this.densePadded = Math.max(at, ALIGN);
    this.denseLength = this.dense.reduce((s, p) => s + p.size, 0);
    // Fresh buffers are zero: the padding between parameters stays zero forever.
    this.denseBuf = gpu.device.createBuffer({ label: `${spec.name}:dense`, size: this.densePadded * 4, usage: STORAGE_USAGE });
    this.denseGradBuf = gpu.device.createBuffer({ label: `${spec.name}:dense.grad`, size: this.densePadded * 4, usage: STORAGE_USAGE });
  }

  /** Validates the spec against the kernel headers and compiles every kernel it uses. */
  static async create(gpu: Gpu, spec: ModelSpec, opts: { registry?: KernelRegistry; seed?: number } = {}): Promise<ModelRunner> {
    const r = new ModelRunner(gpu, spec, opts.registry);
    for (const [phase, calls] of [['forward', spec.forward], ['backward', spec.backward]] as const) {
      calls.forEach((c, i) => {
        const meta = r.registry.meta(c.kernel);
        if (meta.bindings.length !== c.bind.length) {
          throw new Error(`model ${spec.name}: ${phase}[${i}] binds ${c.bind.length} buffers to ${c.kernel} (${r.registry.path(c.kernel)}), which takes ${meta.bindings.length}: ${meta.bindings.map((b) => b.name).join(', ')}`);
        }
        for (const k of Object.keys(c.params)) {
          if (!meta.params.some((p) => p.name === k)) throw new Error(`model ${spec.name}: ${phase}[${i}] sets unknown param ${k} of ${c.kernel} (has ${meta.params.map((p) => p.name).join(', ')})`);
        }
        if (spec.gradSplits === undefined && c.bind.includes('dense.gradSplits')) {
          throw new Error(`model ${spec.name}: ${phase}[${i}] (${c.kernel}) binds dense.gradSplits but the spec sets no gradSplits`);
        }
      });
    }
    const pipelines = new Map<string, { name: string; constants?: Record<string, number> }>();
    for (const c of [...spec.forward, ...spec.backward]) pipelines.set(`${c.kernel}|${JSON.stringify(c.constants ?? {})}`, { name: c.kernel, constants: c.constants });
    await r.dispatcher.prepare(...pipelines.values());
    r.setDense(initDense(spec, opts.seed ?? 1));
    return r;
  }

  /** Offsets of the dense parameters in the flat (unpadded) vector. */
  denseLayout(): { name: string; offset: number; size: number }[] {
    return this.dense.map(({ name, offset, size }) => ({ name, offset, size }));
  }

  private padInto(flat: Float32Array, out: Float32Array): Float32Array {
    if (flat.length !== this.denseLength) throw new Error(`dense vector of ${flat.length} floats, model ${this.spec.name} has ${this.denseLength}`);
    out.fill(0);
    for (const p of this.dense) out.set(flat.subarray(p.offset, p.offset + p.size), p.gpuOffset);
    return out;
  }

  private unpad(padded: Float32Array): Float32Array {
    const out = new Float32Array(this.denseLength);
    for (const p of this.dense) out.set(padded.subarray(p.gpuOffset, p.gpuOffset + p.size), p.offset);
    return out;
  }

  /** Uploads the dense parameters (flat, unpadded); they take effect before the next GPU work. */
  setDense(flat: Float32Array): void {
    this.checkAlive();
    if (this.pendingUpdate) this.flushPending(); // the update came first: keep the order
    this.ensureMirror(2 * this.densePadded);
    this.padInto(flat, this.f32.subarray(0, this.densePadded));
    this.pendingSet = true;
  }

  /** Reads the dense parameters back (flat, unpadded), pending updates applied. */
  async readDense(): Promise<Float32Array> {
    return this.unpad((await this.readback([{ buf: this.denseBuf, floats: this.densePadded }]))[0]);
  }

  /**
   * The local dense optimizer's state (AdaGrad's accumulator, Adam's moments and step), flat and
   * unpadded like the parameters: what a checkpoint needs to resume bit for bit.
   */
  async readOptimizerState(): Promise<{ slots: Record<string, Float32Array>; adamStep: number }> {
    const names = [...this.optimSlots.keys()];
    const got = await this.readback(names.map((n) => ({ buf: this.optimSlots.get(n)!, floats: this.densePadded })));
    return { slots: Object.fromEntries(names.map((n, i) => [n, this.unpad(got[i]!)])), adamStep: this.adamStep };
  }

  setOptimizerState(state: { slots: Record<string, Float32Array>; adamStep: number }): void {
    this.checkAlive();
    this.flushPending();
    for (const [name, flat] of Object.entries(state.slots)) writeView(this.gpu, this.slot(name), this.padInto(flat, new Float32Array(this.densePadded)));
    this.adamStep = state.adamStep;
  }

  // ---- the packed upload ----

  private ensureMirror(elems: number): void {
    if (this.mirror.byteLength >= elems * 4) return;
    const next = new ArrayBuffer(alignUp(Math.ceil(elems * 1.25)) * 4);
    new Uint8Array(next).set(new Uint8Array(this.mirror)); // staged dense values survive growth
    this.mirror = next;
    this.f32 = new Float32Array(next);
    this.u32 = new Uint32Array(next);
  }

  private grow(cur: number, need: number): number {
    return need <= cur ? cur : alignUp(Math.ceil(need * 1.25));
  }

  /** Sizes this step's regions (growing capacities when needed) and assigns every offset. */
  private layout(inp: StepInputs): StepLayout {
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
    const bump = (cur: number, need: number) => this.grow(cur, need);
    for (const [name, n] of inputLens) c.inputs.set(name, bump(c.inputs.get(name) ?? 0, regionLen(n)));
    c.dir = bump(c.dir, regionLen(spec.tables.length * DIR_WORDS));
    c.offsets = bump(c.offsets, Math.max(used.offsets, ALIGN));
    c.index = bump(c.index, Math.max(used.index, ALIGN));
    c.csrOffsets = bump(c.csrOffsets, Math.max(used.csrOffsets, ALIGN));
    c.rows = bump(c.rows, Math.max(used.rows, ALIGN));

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
  private writeInputs(inp: StepInputs, L: StepLayout): void {
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

  /** Writes the staged dense values / gradient (one writeBuffer) and records the copy of the values. */
  private recordPendingCopy(enc: GPUCommandEncoder): void {
    if (!this.pendingSet && !this.pendingUpdate) return;
    if (!this.upload) {
      const size = 2 * this.densePadded * 4;
      this.upload = this.gpu.device.createBuffer({ label: `${this.spec.name}:upload`, size, usage: STORAGE_USAGE });
    }
    const from = this.pendingSet ? 0 : this.densePadded;
    const to = this.pendingUpdate ? 2 * this.densePadded : this.densePadded;
    this.gpu.device.queue.writeBuffer(this.upload, from * 4, this.mirror, from * 4, (to - from) * 4);
    if (this.pendingSet) enc.copyBufferToBuffer(this.upload, 0, this.denseBuf, 0, this.densePadded * 4);
    this.pendingSet = false;
  }

  /** Records the pending applyDenseUpdate (its gradient staged in the upload buffer) into `pass`. */
  private recordPendingUpdate(pass: GPUComputePassEncoder): void {
    const u = this.pendingUpdate;
    if (!u) return;
    const grad: BufferArg = { buffer: this.upload!, offset: this.densePadded * 4, size: this.densePadded * 4 };
    this.dispatcher.record(pass, u.name, u.params, [this.denseBuf, grad, ...u.slots]);
    this.pendingUpdate = null;
  }

  /** Submits pending dense work on its own (when something reads or replaces state before a step). */
  private flushPending(): void {
    if (!this.pendingSet && !this.pendingUpdate) return;
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} dense` });
    this.recordPendingCopy(enc);
    if (this.pendingUpdate) {
      const pass = enc.beginComputePass();
      this.recordPendingUpdate(pass);
      pass.end();
    }
    this.dispatcher.submit(enc);
  }

  private resolve(name: string, L: StepLayout, sized: Map<string, GPUBuffer>): BufferArg {
    const b = sized.get(name);
    if (b) return b;
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
    if (name === 'dense') return this.denseBuf;
    if (name === 'dense.grad') return this.denseGradBuf;
    if (name === 'dense.gradSplits') return this.gradSplitsBuf!;
    for (const [suffix, buf] of [['.grad', this.denseGradBuf], ['', this.denseBuf]] as const) {
      if (!name.endsWith(suffix)) continue;
      const p = this.dense.find((d) => d.name === name.slice(0, name.length - suffix.length));
      if (!p) continue;
      // Size rounded up to 16 bytes (inside the padding) so kernels may read vec4.
      return { buffer: buf, offset: p.gpuOffset * 4, size: alignUp(Math.max(p.size, 1), 4) * 4 };
    }
    throw new Error(`model ${this.spec.name}: no buffer "${name}"`);
  }

  private record(pass: GPUComputePassEncoder, calls: KernelCall[], L: StepLayout, sized: Map<string, GPUBuffer>, phase: string): void {
    calls.forEach((c, i) => {
      const what = `model ${this.spec.name} ${phase}[${i}] ${c.kernel}`;
      const params: Record<string, number> = {};
      for (const [k, e] of Object.entries(c.params)) params[k] = evalExpr(e, L.scope, `${what} param ${k}`);
      const workgroups = c.workgroups?.map((e) => evalExpr(e, L.scope, `${what} workgroups`)) as [number, number?, number?] | undefined;
      this.dispatcher.record(pass, c.kernel, params, c.bind.map((n) => this.resolve(n, L, sized)), { workgroups, constants: c.constants });
    });
  }

  private fillNaNRange(buf: GPUBuffer, offsetFloats: number, floats: number): void {
    if (floats <= 0) return;
    const nan = new Uint32Array(floats).fill(0x7fc00000);
    this.gpu.device.queue.writeBuffer(buf, offsetFloats * 4, nan.buffer, 0, floats * 4);
  }

  /** Sizes the declared buffers for this step (and poisons the outputs on request). */
  private sizeBuffers(L: StepLayout, poison: boolean): Map<string, GPUBuffer> {
    const sized = new Map<string, GPUBuffer>();
    for (const d of this.spec.buffers) {
      const n = shapeSize(d.shape, L.scope, `buffer ${d.name}`);
      const b = this.pool.get(d.name, alignUp(n, 4) * 4);
      sized.set(d.name, b);
      if (poison) this.fillNaNRange(b, 0, n);
    }
    if (poison) {
      this.fillNaNRange(this.gradsBuf!, 0, L.gradsUsed);
      for (const p of this.dense) {
        this.fillNaNRange(this.denseGradBuf, p.gpuOffset, p.size);
        if (this.gradSplitsBuf) for (let z = 0; z < L.scope.splits; z++) this.fillNaNRange(this.gradSplitsBuf, z * this.densePadded + p.gpuOffset, p.size);
      }
    }
    return sized;
  }

  private checkAlive(): void {
    if (this.destroyed) throw new Error('ModelRunner used after destroy()');
  }

  /** One training step's GPU work: upload, forward, loss, backward, readback (one submit, one wait). */
  async step(inp: StepInputs, opts: RunnerStepOptions = {}): Promise<StepResult> {
    this.checkAlive();
    const { spec } = this;
    if (opts.denseUpdate) await this.prepareOptimizer(opts.denseUpdate); // cached after the first
    const t0 = now();
    const L = this.layout(inp);
    const sized = this.sizeBuffers(L, !!opts.poison);
    this.writeInputs(inp, L);
    const t1 = now();

    // This step's readback slot: the one the step before last used (its views expire now).
    const gen = ++this.stepCount;
    const slot = this.slots[gen % 2]!;
    if (slot.mapped) { slot.buffer!.unmap(); slot.mapped = false; }
    const lossBuf = sized.get(spec.loss);
    if (!lossBuf) throw new Error(`model ${spec.name}: loss ${spec.loss} is not a buffer of the model`);
    const denseAt = 64, gradsAt = alignUp(denseAt + this.densePadded);
    const total = gradsAt + L.gradsUsed;
    if (!slot.buffer || slot.buffer.size < total * 4) {
      slot.buffer?.destroy();
      slot.buffer = this.gpu.device.createBuffer({ label: `${spec.name}:readback${gen % 2}`, size: alignUp(Math.ceil(total * 1.25)) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }

    const enc = this.gpu.device.createCommandEncoder({ label: `${spec.name} step` });
    this.recordPendingCopy(enc);
    // Forward, loss, backward: one pass (WebGPU orders dispatches' storage accesses in a pass).
    const pass = enc.beginComputePass({ label: `${spec.name} step` });
    this.recordPendingUpdate(pass);
    this.record(pass, spec.forward, L, sized, 'forward');
    this.record(pass, spec.backward, L, sized, 'backward');
    if (opts.denseUpdate) this.recordUpdate(pass, opts.denseUpdate, this.denseGradBuf);
    pass.end();
    enc.copyBufferToBuffer(lossBuf, 0, slot.buffer, 0, 4);
    enc.copyBufferToBuffer(this.denseGradBuf, 0, slot.buffer, denseAt * 4, this.densePadded * 4);
    if (L.gradsUsed > 0) enc.copyBufferToBuffer(this.gradsBuf!, 0, slot.buffer, gradsAt * 4, L.gradsUsed * 4);
    this.dispatcher.submit(enc);

    // The one wait: mapping waits for the submit (no onSubmittedWorkDone before it).
    await settleOrLost(this.gpu, slot.buffer.mapAsync(GPUMapMode.READ, 0, total * 4));
    slot.mapped = true;
    slot.owner = gen;
    const t2 = now();
    const mapped = slot.buffer.getMappedRange(0, total * 4);
    const loss = new Float32Array(mapped, 0, 1)[0];
    const denseGrads = this.unpad(new Float32Array(mapped, denseAt * 4, this.densePadded));
    const tableGrads = spec.tables.map((t, i) => new Float32Array(mapped, (gradsAt + L.tables[i].rows.at) * 4, L.counts[i].unique * t.dim));
    const t3 = now();
    return {
      loss, tableGrads, denseGrads,
      ms: { upload: t1 - t0, compute: t2 - t1, download: t3 - t2 },
      release: () => {
        if (slot.owner === gen && slot.mapped && !this.destroyed) { slot.buffer!.unmap(); slot.mapped = false; }
      },
    };
  }

  /**
   * Forward only: the spec's `output` (one score per sample, e.g. the logit) for a batch. Inputs
   * the forward pass does not read (labels) may be zeros.
   */
  async predict(inp: StepInputs, opts: RunnerStepOptions = {}): Promise<Float32Array> {
    this.checkAlive();
    const out = this.spec.output;
    if (!out) throw new Error(`model ${this.spec.name} declares no output buffer to predict with`);
    const L = this.layout(inp);
    const sized = this.sizeBuffers(L, !!opts.poison);
    this.writeInputs(inp, L);
    const buf = sized.get(out);
    if (!buf) throw new Error(`model ${this.spec.name}: output ${out} is not a buffer of the model`);
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} predict` });
    this.recordPendingCopy(enc);
    const pass = enc.beginComputePass({ label: `${this.spec.name} forward` });
    this.recordPendingUpdate(pass);
    this.record(pass, this.spec.forward, L, sized, 'forward');
    pass.end();
    const [scores] = await this.copyOut(enc, [{ buf, floats: inp.B }]);
    return scores!;
  }

  /** Copies `reads` into the one-off staging buffer in `enc`, submits, maps and copies out. */
  private async copyOut(enc: GPUCommandEncoder, reads: { buf: GPUBuffer; floats: number }[]): Promise<Float32Array[]> {
    const total = Math.max(reads.reduce((s, r) => s + r.floats, 0), 1) * 4;
    if (!this.oneOff || this.oneOff.size < total) {
      this.oneOff?.destroy();
      this.oneOff = this.gpu.device.createBuffer({ label: `${this.spec.name}:staging`, size: Math.max(16, Math.ceil(total * 1.25 / 4) * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
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

  /** Reads buffers back after the pending dense work (one submit, one wait). */
  private async readback(reads: { buf: GPUBuffer; floats: number }[]): Promise<Float32Array[]> {
    this.checkAlive();
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} readback` });
    this.recordPendingCopy(enc);
    if (this.pendingUpdate) {
      const pass = enc.beginComputePass();
      this.recordPendingUpdate(pass);
      pass.end();
    }
    return this.copyOut(enc, reads);
  }

  private slot(name: string): GPUBuffer {
    let b = this.optimSlots.get(name);
    if (!b) {
      b = this.gpu.device.createBuffer({ label: `${this.spec.name}:dense.${name}`, size: this.densePadded * 4, usage: STORAGE_USAGE });
      this.optimSlots.set(name, b);
    }
    return b;
  }

  /** The optimizer kernel, its params (Adam's step advanced) and its state buffers. */
  private optimizerCall(opt: DenseOptimizer): PendingUpdate {
    const name = `${opt.kind}_update`;
    const n = this.densePadded;
    const common = { n, lr: opt.lr, weightDecay: opt.weightDecay ?? 0, gradScale: opt.gradScale ?? 1 };
    if (opt.kind === 'sgd') return { name, params: common, slots: [] };
    if (opt.kind === 'adagrad') {
      const params: Record<string, number> = { ...common };
      if (opt.eps !== undefined) params.eps = opt.eps;
      return { name, params, slots: [this.slot('accum')] };
    }
    const t = ++this.adamStep;
    const beta1 = opt.beta1 ?? 0.9, beta2 = opt.beta2 ?? 0.999;
    return {
      name,
      params: { ...common, beta1, beta2, eps: opt.eps ?? 1e-8, decoupled: opt.decoupled ? 1 : 0, bc1: 1 - beta1 ** t, bc2: 1 - beta2 ** t },
      slots: [this.slot('m'), this.slot('v')],
    };
  }

  private recordUpdate(pass: GPUComputePassEncoder, opt: DenseOptimizer, grad: BufferArg): void {
    const u = this.optimizerCall(opt);
    this.dispatcher.record(pass, u.name, u.params, [this.denseBuf, grad, ...u.slots]);
  }

  /** Compiles the optimizer kernels (so updates can be recorded synchronously). */
  private async prepareOptimizer(opt: DenseOptimizer): Promise<void> {
    await this.dispatcher.prepare(`${opt.kind}_update`);
  }

  /**
   * The local dense optimizer on `grads` (flat, unpadded; e.g. the allreduced gradient). Deferred:
   * the gradient is staged in the upload buffer and the update is recorded at the start of the
   * next GPU work (the next step's encoder, or a readback), so it costs no submit and no wait of
   * its own. Resolves once it is staged.
   */
  async applyDenseUpdate(grads: Float32Array, opt: DenseOptimizer): Promise<void> {
    this.checkAlive();
    await this.prepareOptimizer(opt);
    if (this.pendingUpdate) this.flushPending(); // two updates in a row: the first one goes now
    this.ensureMirror(2 * this.densePadded);
    this.padInto(grads, this.f32.subarray(this.densePadded, 2 * this.densePadded));
    this.pendingUpdate = this.optimizerCall(opt);
  }

  /** Frees this runner's buffers (not the device). Views from step() are invalid afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pendingSet = false;
    this.pendingUpdate = null;
    this.pool.destroyAll();
    this.denseBuf.destroy();
    this.denseGradBuf.destroy();
    this.gradSplitsBuf?.destroy();
    for (const b of this.optimSlots.values()) b.destroy();
    this.upload?.destroy();
    this.gradsBuf?.destroy();
    for (const s of this.slots) s.buffer?.destroy();
    this.oneOff?.destroy();
  }
}
