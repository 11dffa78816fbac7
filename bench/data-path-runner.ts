// BENCHMARK ONLY. A stand-in for ModelRunner that does no GPU work: no uploads, no kernels, no
// readbacks. Its step returns gradients of the right shapes (one row per unique row of every
// table, the flat dense gradient) filled with a small constant, so WorkerStep still pushes every
// row gradient, still hands the dense gradient to its hook (the ring allreduce with W = 2) and
// still advances the clock: what is left is the step's data path, the time a worker would take
// with an infinitely fast GPU. Not a product feature; nothing in src/ knows about it.
//
// WorkerStep takes the runner by its ModelRunner type; this class has the members WorkerStep uses
// (spec, denseLength, step, setDense, applyDenseUpdate), and `asModelRunner` is the one cast.
import type { ModelRunner, StepInputs, StepResult, DenseOptimizer } from '../src/model/model-runner.ts';
import { denseLength, type ModelSpec } from '../src/model/model-spec.ts';

/** The value of every substituted gradient entry: small, finite and not zero (no zero fast path). */
export const STAND_IN_GRAD = 1e-4;

export class DataPathRunner implements Pick<ModelRunner, 'spec' | 'denseLength' | 'setDense' | 'applyDenseUpdate'> {
  readonly denseLength: number;
  /** Milliseconds the stand-in itself spent in its last step (filling the gradient arrays). */
  lastStepMs = 0;
  /** Per table, an array reused while it is large enough (the real runner reads back into reused memory too). */
  private readonly tableBufs: Float32Array[];
  private readonly denseBuf: Float32Array;

  constructor(readonly spec: ModelSpec) {
    this.denseLength = denseLength(spec);
    this.tableBufs = spec.tables.map(() => new Float32Array(0));
    this.denseBuf = new Float32Array(this.denseLength);
  }

  /**
   * Right-shaped gradients, refilled every step: WorkerStep scales them in place (by the local
   * share of the global batch), so values reused unfilled would shrink towards denormals.
   */
  async step(inp: StepInputs, _opts?: unknown): Promise<StepResult> {
    const t0 = performance.now();
    if (inp.tables.length !== this.spec.tables.length) throw new Error(`data-path runner: ${inp.tables.length} tables, model ${this.spec.tables.length}`);
    const tableGrads = inp.tables.map((t, i) => {
      const n = t.prep.keys.length * this.spec.tables[i]!.dim;
      if (this.tableBufs[i]!.length < n) this.tableBufs[i] = new Float32Array(Math.ceil(n * 1.25));
      return this.tableBufs[i]!.subarray(0, n).fill(STAND_IN_GRAD);
    });
    const denseGrads = this.denseBuf.fill(STAND_IN_GRAD);
    // `release` is for runners whose gradients are views of mapped readback memory; nothing to do here.
    const result: StepResult & { release(): void } = { loss: 0, tableGrads, denseGrads, ms: { upload: 0, compute: 0, download: 0 }, release() {} };
    this.lastStepMs = performance.now() - t0;
    return result;
  }

  /** Pure-PS mode hands the pulled dense vector over; there are no dense parameters to set. */
  setDense(flat: Float32Array): void {
    if (flat.length !== this.denseLength) throw new Error(`data-path runner: dense vector of ${flat.length} floats, model has ${this.denseLength}`);
  }

  /** The dense update is GPU work: left out. */
  async applyDenseUpdate(_grads: Float32Array, _opt: DenseOptimizer): Promise<void> {}

  destroy(): void {}
}

/** The stand-in where WorkerStep expects a ModelRunner (it uses only the members above). */
export function asModelRunner(r: DataPathRunner): ModelRunner {
  return r as unknown as ModelRunner;
}
