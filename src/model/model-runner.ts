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
//
// The packing lives in step-layout.ts, the optimizer state in dense-optimizer.ts, the staging
// buffers in readback.ts; this file records and sequences the GPU work.
import type { Gpu } from '../gpu/device.ts';
import { KernelRegistry } from '../gpu/kernel-registry.ts';
import { Dispatcher, type BufferArg } from '../gpu/dispatch.ts';
import { BufferPool, STORAGE_USAGE, writeView } from '../gpu/buffers.ts';
import { denseSizes, evalExpr, initDense, shapeSize, validateSpec, type KernelCall, type ModelSpec } from './model-spec.ts';
import { ALIGN, alignUp, padDense, unpadDense, StepUpload, type DenseSlot, type StepInputs, type StepLayout } from './step-layout.ts';
import { DenseOptimizerState, type DenseOptimizer, type UpdateCall } from './dense-optimizer.ts';
import { Readback } from './readback.ts';

export type { StepInputs } from './step-layout.ts';
export type { DenseOptimizer } from './dense-optimizer.ts';
export { initDense } from './model-spec.ts';

export interface RunnerStepOptions {
  /** Fill every output, activation and gradient buffer with NaN first (tests). */
  poison?: boolean;
  /**
   * Apply the local dense optimizer to this step's own dense gradient in the same encoder, right
   * after the backward pass (when nothing, such as an allreduce, has to combine it first).
   */
  denseUpdate?: DenseOptimizer;
  /**
   * Multiplies every gradient of the step (the read-back rows and dense gradient, and the one a
   * fused denseUpdate applies) by this factor, e.g. a worker's local batch over the global batch.
   * Applied on the GPU as the kernels write the gradients where the spec says so
   * (ModelSpec.scalesGrads: DLRM scales both), by the runner otherwise. Default 1.
   */
  gradScale?: number;
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
   * Per table (spec order): one gradient row per unique row, [U, dim] (of gradScale x the batch-mean loss).
   * Views of mapped staging memory: valid until release() or until the step after next starts;
   * they may be scaled in place (the writes are not sent back to the GPU).
   */
  tableGrads: Float32Array[];
  /** Flat dense gradient (of gradScale x the batch-mean loss), unpadded, declaration order (a copy). */
  denseGrads: Float32Array;
  ms: StepTimings;
  /** Unmaps the staging memory behind tableGrads (idempotent; the step after next does it anyway). */
  release(): void;
}

const now = () => performance.now();

export class ModelRunner {
  readonly registry: KernelRegistry;
  readonly dispatcher: Dispatcher;
  readonly pool: BufferPool;
  readonly denseLength: number;
  private readonly dense: DenseSlot[];
  private readonly densePadded: number;
  private readonly denseBuf: GPUBuffer;
  private readonly denseGradBuf: GPUBuffer;
  private readonly optim: DenseOptimizerState;

  private pendingSet = false;
  private pendingUpdate: UpdateCall | null = null;
  // The upload buffer and its CPU mirror. Elements [0, densePadded) hold a pending setDense,
  // [densePadded, 2*densePadded) a pending update's gradient, then the per-step data regions.
  private readonly up: StepUpload;
  private readonly readbacks: Readback;
  private stepCount = 0;
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
    this.optim = new DenseOptimizerState(gpu, this.dispatcher, spec.name, this.densePadded, this.denseBuf);
    this.up = new StepUpload(gpu, spec, this.dense, this.densePadded);
    this.readbacks = new Readback(gpu, this.dispatcher, spec.name);
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
    return padDense(this.dense, flat, out);
  }

  private unpad(padded: Float32Array, scale = 1): Float32Array {
    return unpadDense(this.dense, this.denseLength, padded, scale);
  }

  /** Uploads the dense parameters (flat, unpadded); they take effect before the next GPU work. */
  setDense(flat: Float32Array): void {
    this.checkAlive();
    if (this.pendingUpdate) this.flushPending(); // the update came first: keep the order
    this.up.ensureMirror(2 * this.densePadded);
    this.padInto(flat, this.up.f32.subarray(0, this.densePadded));
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
    const names = [...this.optim.slots.keys()];
    const got = await this.readback(names.map((n) => ({ buf: this.optim.slots.get(n)!, floats: this.densePadded })));
    return { slots: Object.fromEntries(names.map((n, i) => [n, this.unpad(got[i]!)])), adamStep: this.optim.adamStep };
  }

  setOptimizerState(state: { slots: Record<string, Float32Array>; adamStep: number }): void {
    this.checkAlive();
    this.flushPending();
    for (const [name, flat] of Object.entries(state.slots)) writeView(this.gpu, this.optim.slot(name), this.padInto(flat, new Float32Array(this.densePadded)));
    this.optim.adamStep = state.adamStep;
  }

  /** Writes the staged dense values / gradient (one writeBuffer) and records the copy of the values. */
  private recordPendingCopy(enc: GPUCommandEncoder): void {
    if (!this.pendingSet && !this.pendingUpdate) return;
    const from = this.pendingSet ? 0 : this.densePadded;
    const to = this.pendingUpdate ? 2 * this.densePadded : this.densePadded;
    const upload = this.up.writeStaged(from, to);
    if (this.pendingSet) enc.copyBufferToBuffer(upload, 0, this.denseBuf, 0, this.densePadded * 4);
    this.pendingSet = false;
  }

  /** Records the pending applyDenseUpdate (its gradient staged in the upload buffer) into `pass`. */
  private recordPendingUpdate(pass: GPUComputePassEncoder): void {
    const u = this.pendingUpdate;
    if (!u) return;
    const grad: BufferArg = { buffer: this.up.upload!, offset: this.densePadded * 4, size: this.densePadded * 4 };
    this.optim.record(pass, u, grad);
    this.pendingUpdate = null;
  }

  /** Records all pending dense work into `enc`, the update in a pass of its own. */
  private recordPending(enc: GPUCommandEncoder): void {
    this.recordPendingCopy(enc);
    if (this.pendingUpdate) {
      const pass = enc.beginComputePass();
      this.recordPendingUpdate(pass);
      pass.end();
    }
  }

  /** Submits pending dense work on its own (when something reads or replaces state before a step). */
  private flushPending(): void {
    if (!this.pendingSet && !this.pendingUpdate) return;
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} dense` });
    this.recordPending(enc);
    this.dispatcher.submit(enc);
  }

  private resolve(name: string, L: StepLayout, sized: Map<string, GPUBuffer>): BufferArg {
    const b = sized.get(name);
    if (b) return b;
    const step = this.up.resolve(name, L);
    if (step) return step;
    if (name === 'dense') return this.denseBuf;
    if (name === 'dense.grad') return this.denseGradBuf;
    if (name === 'dense.gradSplits') return this.up.gradSplitsBuf!;
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
      this.fillNaNRange(this.up.gradsBuf!, 0, L.gradsUsed);
      for (const p of this.dense) {
        this.fillNaNRange(this.denseGradBuf, p.gpuOffset, p.size);
        if (this.up.gradSplitsBuf) for (let z = 0; z < L.scope.splits; z++) this.fillNaNRange(this.up.gradSplitsBuf, z * this.densePadded + p.gpuOffset, p.size);
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
    if (opts.denseUpdate) await this.optim.prepare(opts.denseUpdate); // cached after the first
    const gradScale = opts.gradScale ?? 1;
    if (!Number.isFinite(gradScale)) throw new Error(`model ${spec.name}: gradScale ${gradScale} is not a finite number`);
    // The scale the runner applies itself: to what the spec's kernels do not scale (scalesGrads).
    const rowScale = spec.scalesGrads?.rows ? 1 : gradScale, denseScale = spec.scalesGrads?.dense ? 1 : gradScale;
    const t0 = now();
    const L = this.up.layout(inp, gradScale);
    const sized = this.sizeBuffers(L, !!opts.poison);
    this.up.writeInputs(inp, L);
    const t1 = now();

    // This step's readback slot: the one the step before last used (its views expire now).
    const gen = ++this.stepCount;
    const slot = this.readbacks.take(gen);
    const lossBuf = sized.get(spec.loss);
    if (!lossBuf) throw new Error(`model ${spec.name}: loss ${spec.loss} is not a buffer of the model`);
    const denseAt = 64, gradsAt = alignUp(denseAt + this.densePadded);
    const total = gradsAt + L.gradsUsed;
    const staging = this.readbacks.size(slot, gen, total);

    const enc = this.gpu.device.createCommandEncoder({ label: `${spec.name} step` });
    this.recordPendingCopy(enc);
    // Forward, loss, backward: one pass (WebGPU orders dispatches' storage accesses in a pass).
    const pass = enc.beginComputePass({ label: `${spec.name} step` });
    this.recordPendingUpdate(pass);
    this.record(pass, spec.forward, L, sized, 'forward');
    this.record(pass, spec.backward, L, sized, 'backward');
    if (opts.denseUpdate) {
      const u = denseScale === 1 ? opts.denseUpdate : { ...opts.denseUpdate, gradScale: denseScale * (opts.denseUpdate.gradScale ?? 1) };
      this.optim.record(pass, this.optim.call(u), this.denseGradBuf);
    }
    pass.end();
    enc.copyBufferToBuffer(lossBuf, 0, staging, 0, 4);
    enc.copyBufferToBuffer(this.denseGradBuf, 0, staging, denseAt * 4, this.densePadded * 4);
    if (L.gradsUsed > 0) enc.copyBufferToBuffer(this.up.gradsBuf!, 0, staging, gradsAt * 4, L.gradsUsed * 4);
    this.dispatcher.submit(enc);

    // The one wait: mapping waits for the submit (no onSubmittedWorkDone before it).
    const mapped = await this.readbacks.map(slot, gen, total);
    const t2 = now();
    const loss = new Float32Array(mapped, 0, 1)[0];
    const denseGrads = this.unpad(new Float32Array(mapped, denseAt * 4, this.densePadded), denseScale);
    const tableGrads = spec.tables.map((t, i) => new Float32Array(mapped, (gradsAt + L.tables[i].rows.at) * 4, L.counts[i].unique * t.dim));
    if (rowScale !== 1) for (const g of tableGrads) for (let j = 0; j < g.length; j++) g[j] *= rowScale; // in place: never sent back
    const t3 = now();
    return {
      loss, tableGrads, denseGrads,
      ms: { upload: t1 - t0, compute: t2 - t1, download: t3 - t2 },
      release: () => this.readbacks.release(slot, gen),
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
    const L = this.up.layout(inp);
    const sized = this.sizeBuffers(L, !!opts.poison);
    this.up.writeInputs(inp, L);
    const buf = sized.get(out);
    if (!buf) throw new Error(`model ${this.spec.name}: output ${out} is not a buffer of the model`);
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} predict` });
    this.recordPendingCopy(enc);
    const pass = enc.beginComputePass({ label: `${this.spec.name} forward` });
    this.recordPendingUpdate(pass);
    this.record(pass, this.spec.forward, L, sized, 'forward');
    pass.end();
    const [scores] = await this.readbacks.copyOut(enc, [{ buf, floats: inp.B }]);
    return scores!;
  }

  /** Reads buffers back after the pending dense work (one submit, one wait). */
  private async readback(reads: { buf: GPUBuffer; floats: number }[]): Promise<Float32Array[]> {
    this.checkAlive();
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} readback` });
    this.recordPending(enc);
    return this.readbacks.copyOut(enc, reads);
  }

  /**
   * The local dense optimizer on `grads` (flat, unpadded; e.g. the allreduced gradient). Deferred:
   * the gradient is staged in the upload buffer and the update is recorded at the start of the
   * next GPU work (the next step's encoder, or a readback), so it costs no submit and no wait of
   * its own. Resolves once it is staged.
   */
  async applyDenseUpdate(grads: Float32Array, opt: DenseOptimizer): Promise<void> {
    this.checkAlive();
    await this.optim.prepare(opt);
    if (this.pendingUpdate) this.flushPending(); // two updates in a row: the first one goes now
    this.up.ensureMirror(2 * this.densePadded);
    this.padInto(grads, this.up.f32.subarray(this.densePadded, 2 * this.densePadded));
    this.pendingUpdate = this.optim.call(opt);
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
    this.optim.destroy();
    this.up.destroy();
    this.readbacks.destroy();
  }
}
