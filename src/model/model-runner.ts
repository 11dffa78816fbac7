// Executes a ModelSpec on one GPU: compiles the kernels once, sizes buffers per step from the
// spec's shape expressions (the pool reuses them while they fit, so a fixed batch size allocates
// once), records upload + forward + loss + backward + segment-sum + readback copies into ONE
// command encoder and one submit, and reads back only the loss, one gradient per unique row of
// every table, and the dense gradients.
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
  denseSizes, evalExpr, shapeSize, stepScope, validateSpec,
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
}

export interface StepTimings {
  upload: number;
  compute: number;
  download: number;
}

export interface StepResult {
  /** Mean loss over the batch. */
  loss: number;
  /** Per table (spec order): one gradient row per unique row, [U, dim] (of the batch-mean loss). */
  tableGrads: Float32Array[];
  /** Flat dense gradient (of the batch-mean loss), unpadded, declaration order. */
  denseGrads: Float32Array;
  ms: StepTimings;
}

export type DenseOptimizer =
  | { kind: 'sgd'; lr: number; weightDecay?: number }
  | { kind: 'adagrad'; lr: number; eps?: number; weightDecay?: number }
  | { kind: 'adam'; lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decoupled?: boolean };

interface DenseSlot { name: string; offset: number; size: number; gpuOffset: number }

const now = () => performance.now();


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

export class ModelRunner {
  readonly registry: KernelRegistry;
  readonly dispatcher: Dispatcher;
  readonly pool: BufferPool;
  readonly denseLength: number;
  private readonly dense: DenseSlot[];
  private readonly densePadded: number;
  private readonly denseBuf: GPUBuffer;
  private readonly denseGradBuf: GPUBuffer;
  private optimSlots = new Map<string, GPUBuffer>();
  private adamStep = 0;
  private staging: GPUBuffer | null = null;
  private destroyed = false;

  private constructor(readonly gpu: Gpu, readonly spec: ModelSpec, registry?: KernelRegistry) {
    validateSpec(spec);
    this.registry = registry ?? new KernelRegistry(gpu, spec.kernelDirs);
    this.dispatcher = new Dispatcher(gpu, this.registry, { slots: 256 });
    this.pool = new BufferPool(gpu, spec.name);
    const align = Math.max(1, gpu.limits.minStorageBufferOffsetAlignment / 4);
    let at = 0;
    this.dense = denseSizes(spec).map((p) => {
      const slot = { ...p, gpuOffset: at };
      at += Math.ceil(Math.max(p.size, 1) / align) * align;
      return slot;
    });
    this.densePadded = Math.max(at, 4);
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
      });
    }
    const kernels = new Set([...spec.forward, ...spec.backward].map((c) => c.kernel));
    await r.dispatcher.prepare(...kernels);
    r.setDense(initDense(spec, opts.seed ?? 1));
    return r;
  }

  /** Offsets of the dense parameters in the flat (unpadded) vector. */
  denseLayout(): { name: string; offset: number; size: number }[] {
    return this.dense.map(({ name, offset, size }) => ({ name, offset, size }));
  }

  private pad(flat: Float32Array): Float32Array {
    if (flat.length !== this.denseLength) throw new Error(`dense vector of ${flat.length} floats, model ${this.spec.name} has ${this.denseLength}`);
    const out = new Float32Array(this.densePadded);
    for (const p of this.dense) out.set(flat.subarray(p.offset, p.offset + p.size), p.gpuOffset);
    return out;
  }

  private unpad(padded: Float32Array): Float32Array {
    const out = new Float32Array(this.denseLength);
    for (const p of this.dense) out.set(padded.subarray(p.gpuOffset, p.gpuOffset + p.size), p.offset);
    return out;
  }

  /** Uploads the dense parameters (flat, unpadded). */
  setDense(flat: Float32Array): void {
    writeView(this.gpu, this.denseBuf, this.pad(flat));
  }

  /** Reads the dense parameters back (flat, unpadded). */
  async readDense(): Promise<Float32Array> {
    return this.unpad(await this.readback([{ buf: this.denseBuf, floats: this.densePadded }]).then((r) => r[0]));
  }

  /**
   * The local dense optimizer's state (AdaGrad's accumulator, Adam's moments and step), flat and
   * unpadded like the parameters: what a checkpoint needs to resume bit for bit.
   */
  async readOptimizerState(): Promise<{ slots: Record<string, Float32Array>; adamStep: number }> {
    const names = [...this.optimSlots.keys()];
    const got = names.length ? await this.readback(names.map((n) => ({ buf: this.optimSlots.get(n)!, floats: this.densePadded }))) : [];
    return { slots: Object.fromEntries(names.map((n, i) => [n, this.unpad(got[i]!)])), adamStep: this.adamStep };
  }

  setOptimizerState(state: { slots: Record<string, Float32Array>; adamStep: number }): void {
    for (const [name, flat] of Object.entries(state.slots)) writeView(this.gpu, this.slot(name), this.pad(flat));
    this.adamStep = state.adamStep;
  }

  private resolve(name: string, sized: Map<string, GPUBuffer>): BufferArg {
    const b = sized.get(name);
    if (b) return b;
    const isGrad = name.endsWith('.grad');
    const p = this.dense.find((d) => d.name === (isGrad ? name.slice(0, -5) : name));
    if (p) return { buffer: isGrad ? this.denseGradBuf : this.denseBuf, offset: p.gpuOffset * 4, size: Math.max(p.size, 1) * 4 };
    throw new Error(`model ${this.spec.name}: no buffer "${name}"`);
  }

  private record(pass: GPUComputePassEncoder, calls: KernelCall[], scope: Record<string, number>, sized: Map<string, GPUBuffer>, phase: string): void {
    calls.forEach((c, i) => {
      const what = `model ${this.spec.name} ${phase}[${i}] ${c.kernel}`;
      const params: Record<string, number> = {};
      for (const [k, e] of Object.entries(c.params)) params[k] = evalExpr(e, scope, `${what} param ${k}`);
      const workgroups = c.workgroups?.map((e) => evalExpr(e, scope, `${what} workgroups`)) as [number, number?, number?] | undefined;
      this.dispatcher.record(pass, c.kernel, params, c.bind.map((n) => this.resolve(n, sized)), { workgroups });
    });
  }

  private fillNaNRange(buf: GPUBuffer, offsetFloats: number, floats: number): void {
    if (floats <= 0) return;
    const nan = new Uint32Array(floats).fill(0x7fc00000);
    this.gpu.device.queue.writeBuffer(buf, offsetFloats * 4, nan.buffer, 0, floats * 4);
  }

  /** One training step's GPU work: upload, forward, loss, backward, readback (one submit). */
  async step(inp: StepInputs, opts: RunnerStepOptions = {}): Promise<StepResult> {
    if (this.destroyed) throw new Error('ModelRunner used after destroy()');
    const { spec } = this;
    const t0 = now();
    const { counts, scope, sized } = this.upload(inp, !!opts.poison);
    const t1 = now();

    // Forward, loss, backward: one pass (WebGPU orders dispatches' storage accesses in a pass).
    const enc = this.gpu.device.createCommandEncoder({ label: `${spec.name} step` });
    const pass = enc.beginComputePass({ label: `${spec.name} fwd+bwd` });
    this.record(pass, spec.forward, scope, sized, 'forward');
    this.record(pass, spec.backward, scope, sized, 'backward');
    pass.end();

    const reads = [
      { buf: sized.get(spec.loss)!, floats: 1 },
      ...spec.tables.map((t, i) => ({ buf: sized.get(`${t.name}.grad`)!, floats: counts[i].unique * t.dim })),
      { buf: this.denseGradBuf, floats: this.densePadded },
    ];
    const staged = this.recordCopies(enc, reads);
    this.dispatcher.submit(enc);
    await settleOrLost(this.gpu, this.gpu.device.queue.onSubmittedWorkDone());
    const t2 = now();
    const out = await this.mapStaged(staged, reads);
    const t3 = now();
    return {
      loss: out[0][0],
      tableGrads: out.slice(1, 1 + spec.tables.length),
      denseGrads: this.unpad(out[out.length - 1]),
      ms: { upload: t1 - t0, compute: t2 - t1, download: t3 - t2 },
    };
  }

  /** Uploads inputs, pulled rows and index structures; sizes every buffer for this batch. */
  private upload(inp: StepInputs, poison: boolean): { counts: { unique: number; nnz: number }[]; scope: Record<string, number>; sized: Map<string, GPUBuffer> } {
    const { spec } = this;
    const { B } = inp;
    if (inp.tables.length !== spec.tables.length) throw new Error(`model ${spec.name} has ${spec.tables.length} tables, the batch has ${inp.tables.length}`);
    const counts = inp.tables.map((t) => ({ unique: t.prep.unique.length, nnz: t.prep.inverse.length }));
    const scope = stepScope(spec, B, counts);
    const sized = new Map<string, GPUBuffer>();

    // Upload: inputs, pulled rows and the index structures.
    for (const d of spec.inputs) {
      const data = inp.inputs[d.name];
      const n = shapeSize(d.shape, scope, `input ${d.name}`);
      if (!data || data.length !== n) throw new Error(`model ${spec.name}: input ${d.name} needs ${n} floats, got ${data ? data.length : 'none'}`);
      sized.set(d.name, this.pool.upload(d.name, data));
    }
    spec.tables.forEach((t, i) => {
      const { prep, rows } = inp.tables[i];
      const U = prep.unique.length;
      if (rows.length !== U * t.dim) throw new Error(`table ${t.name}: ${rows.length} row values for ${U} unique rows of dim ${t.dim}`);
      if (prep.bagOffsets.length !== B + 1) throw new Error(`table ${t.name}: bag offsets for ${prep.bagOffsets.length - 1} samples, batch has ${B}`);
      sized.set(`${t.name}.rows`, this.pool.upload(`${t.name}.rows`, rows));
      sized.set(`${t.name}.index`, this.pool.upload(`${t.name}.index`, prep.inverse));
      sized.set(`${t.name}.offsets`, this.pool.upload(`${t.name}.offsets`, prep.bagOffsets));
      sized.set(`${t.name}.csrOffsets`, this.pool.upload(`${t.name}.csrOffsets`, prep.csrOffsets));
      sized.set(`${t.name}.csrItems`, this.pool.upload(`${t.name}.csrItems`, prep.csrItems));
      const g = this.pool.get(`${t.name}.grad`, U * t.dim * 4);
      sized.set(`${t.name}.grad`, g);
      if (poison) this.fillNaNRange(g, 0, U * t.dim);
    });
    for (const d of spec.buffers) {
      const n = shapeSize(d.shape, scope, `buffer ${d.name}`);
      const b = this.pool.get(d.name, n * 4);
      sized.set(d.name, b);
      if (poison) this.fillNaNRange(b, 0, n);
    }
    if (poison) for (const p of this.dense) this.fillNaNRange(this.denseGradBuf, p.gpuOffset, p.size);
    return { counts, scope, sized };
  }

  /**
   * Forward only: the spec's `output` (one score per sample, e.g. the logit) for a batch. Inputs
   * the forward pass does not read (labels) may be zeros.
   */
  async predict(inp: StepInputs, opts: RunnerStepOptions = {}): Promise<Float32Array> {
    if (this.destroyed) throw new Error('ModelRunner used after destroy()');
    const out = this.spec.output;
    if (!out) throw new Error(`model ${this.spec.name} declares no output buffer to predict with`);
    const { scope, sized } = this.upload(inp, !!opts.poison);
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} predict` });
    const pass = enc.beginComputePass({ label: `${this.spec.name} forward` });
    this.record(pass, this.spec.forward, scope, sized, 'forward');
    pass.end();
    const buf = sized.get(out);
    if (!buf) throw new Error(`model ${this.spec.name}: output ${out} is not a buffer of the model`);
    const reads = [{ buf, floats: inp.B }];
    const staged = this.recordCopies(enc, reads);
    this.dispatcher.submit(enc);
    const [scores] = await this.mapStaged(staged, reads);
    return scores!.slice();
  }

  private recordCopies(enc: GPUCommandEncoder, reads: { buf: GPUBuffer; floats: number }[]): GPUBuffer {
    const total = reads.reduce((s, r) => s + r.floats, 0) * 4;
    if (!this.staging || this.staging.size < total) {
      this.staging?.destroy();
      this.staging = this.gpu.device.createBuffer({ label: `${this.spec.name}:staging`, size: Math.max(16, Math.ceil(total * 1.25 / 4) * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }
    let at = 0;
    for (const r of reads) {
      if (r.floats > 0) enc.copyBufferToBuffer(r.buf, 0, this.staging, at, r.floats * 4);
      at += r.floats * 4;
    }
    return this.staging;
  }

  private async mapStaged(staging: GPUBuffer, reads: { floats: number }[]): Promise<Float32Array[]> {
    const total = reads.reduce((s, r) => s + r.floats, 0) * 4;
    await settleOrLost(this.gpu, staging.mapAsync(GPUMapMode.READ, 0, Math.max(total, 4)));
    const all = new Float32Array(staging.getMappedRange(0, Math.max(total, 4)).slice(0));
    staging.unmap();
    const out: Float32Array[] = [];
    let at = 0;
    for (const r of reads) {
      out.push(all.subarray(at, at + r.floats));
      at += r.floats;
    }
    return out;
  }

  private async readback(reads: { buf: GPUBuffer; floats: number }[]): Promise<Float32Array[]> {
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} readback` });
    const staged = this.recordCopies(enc, reads);
    this.gpu.device.queue.submit([enc.finish()]);
    return this.mapStaged(staged, reads);
  }

  private slot(name: string): GPUBuffer {
    let b = this.optimSlots.get(name);
    if (!b) {
      b = this.gpu.device.createBuffer({ label: `${this.spec.name}:dense.${name}`, size: this.densePadded * 4, usage: STORAGE_USAGE });
      this.optimSlots.set(name, b);
    }
    return b;
  }

  /**
   * The local dense optimizer: uploads `grads` (flat, unpadded; e.g. the allreduced gradient) and
   * applies one update to the dense parameters on the GPU.
   */
  async applyDenseUpdate(grads: Float32Array, opt: DenseOptimizer): Promise<void> {
    const name = `${opt.kind}_update`;
    await this.dispatcher.prepare(name);
    writeView(this.gpu, this.denseGradBuf, this.pad(grads));
    const enc = this.gpu.device.createCommandEncoder({ label: `${this.spec.name} dense ${opt.kind}` });
    const pass = enc.beginComputePass();
    const n = this.densePadded;
    const wd = opt.weightDecay ?? 0;
    if (opt.kind === 'sgd') {
      this.dispatcher.record(pass, name, { n, lr: opt.lr, weightDecay: wd }, [this.denseBuf, this.denseGradBuf]);
    } else if (opt.kind === 'adagrad') {
      const p: Record<string, number> = { n, lr: opt.lr, weightDecay: wd };
      if (opt.eps !== undefined) p.eps = opt.eps;
      this.dispatcher.record(pass, name, p, [this.denseBuf, this.denseGradBuf, this.slot('accum')]);
    } else {
      const t = ++this.adamStep;
      const beta1 = opt.beta1 ?? 0.9, beta2 = opt.beta2 ?? 0.999;
      this.dispatcher.record(pass, name, {
        n, lr: opt.lr, beta1, beta2, eps: opt.eps ?? 1e-8, weightDecay: wd, decoupled: opt.decoupled ? 1 : 0,
        bc1: 1 - beta1 ** t, bc2: 1 - beta2 ** t,
      }, [this.denseBuf, this.denseGradBuf, this.slot('m'), this.slot('v')]);
    }
    pass.end();
    this.dispatcher.submit(enc);
    await settleOrLost(this.gpu, this.gpu.device.queue.onSubmittedWorkDone());
  }

  /** Frees this runner's buffers (not the device). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pool.destroyAll();
    this.denseBuf.destroy();
    this.denseGradBuf.destroy();
    for (const b of this.optimSlots.values()) b.destroy();
    this.staging?.destroy();
  }
}
