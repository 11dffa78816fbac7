// The runner's local dense optimizer: its kernels (sgd/adagrad/adam_update), their state buffers
// (AdaGrad's accumulator, Adam's moments, laid out like the padded dense buffer) and Adam's step
// count, and recording an update into a compute pass. Apart from the runner so that the state a
// checkpoint must carry to resume bit for bit lives in one place, and so that a deferred update
// (applyDenseUpdate) and an in-step one (step(..., { denseUpdate })) build the same call.
import type { Gpu } from '../gpu/device.ts';
import type { BufferArg, Dispatcher } from '../gpu/dispatch.ts';
import { STORAGE_USAGE } from '../gpu/buffers.ts';

export type DenseOptimizer = (
  | { kind: 'sgd'; lr: number; weightDecay?: number }
  | { kind: 'adagrad'; lr: number; eps?: number; weightDecay?: number }
  | { kind: 'adam'; lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decoupled?: boolean }
) & {
  /** Multiplies the gradient first (e.g. local batch mean -> share of the global batch). */
  gradScale?: number;
};

/** One update ready to record: the kernel, its params (Adam's step already advanced), its state buffers. */
export interface UpdateCall { name: string; params: Record<string, number>; slots: GPUBuffer[] }

export class DenseOptimizerState {
  /** State buffers by name ('accum', 'm', 'v'), each densePadded floats; made on first use. */
  readonly slots = new Map<string, GPUBuffer>();
  adamStep = 0;

  constructor(
    private readonly gpu: Gpu,
    private readonly dispatcher: Dispatcher,
    private readonly label: string,
    private readonly densePadded: number,
    private readonly denseBuf: GPUBuffer,
  ) {}

  slot(name: string): GPUBuffer {
    let b = this.slots.get(name);
    if (!b) {
      b = this.gpu.device.createBuffer({ label: `${this.label}:dense.${name}`, size: this.densePadded * 4, usage: STORAGE_USAGE });
      this.slots.set(name, b);
    }
    return b;
  }

  /** The optimizer kernel, its params (Adam's step advanced) and its state buffers. */
  call(opt: DenseOptimizer): UpdateCall {
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

  /** Records `u` on the dense parameters with gradient `grad` into `pass`. */
  record(pass: GPUComputePassEncoder, u: UpdateCall, grad: BufferArg): void {
    this.dispatcher.record(pass, u.name, u.params, [this.denseBuf, grad, ...u.slots]);
  }

  /** Compiles the optimizer kernels (so updates can be recorded synchronously). */
  async prepare(opt: DenseOptimizer): Promise<void> {
    await this.dispatcher.prepare(`${opt.kind}_update`);
  }

  destroy(): void {
    for (const b of this.slots.values()) b.destroy();
  }
}
