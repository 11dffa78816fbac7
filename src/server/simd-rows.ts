// A table's rows in one WebAssembly memory, and its built-in update run over them in WASM SIMD
// (optimizer-kernels.ts). WASM reads only its own memory, and copying rows in and out cost more
// than the kernel saved (4096 random AdaGrad rows of 200k x 64, one run: gather/scatter 2.3 ms a
// push against 0.1 ms in the kernel, 2026-12-02), so the store's blocks live in this memory and
// the kernel updates them in place from a list of row offsets; only the gradients are copied in
// (one memcpy per chunk). Each block of 64 rows is touched first (optimizer-kernels.ts's touch,
// WebAssembly's stand-in for prefetch: the rows' misses overlap instead of stalling one by one).
// The results equal the JS reference updates of optimizers.ts bit for bit
// (test/store-simd.test.ts); custom optimizers and FTRL run their JS update per row.
// The worker's row cache (src/worker/row-cache.ts) uses it too, with one memory sized up front
// for its fixed capacity (never grown) and the gradients gathered by row (runAt).
import { copyRow } from '../util/row-words.ts';
import { instantiate, MAX_PAGES, newMemory, PAGE_BYTES, type WasmMemory } from '../util/wasm-module.ts';
import { KERNELS, kernelModule } from './optimizer-kernels.ts';

/** Floats of gradient copied in per kernel call (64 KiB: stays in L2 with its rows). */
const CHUNK_FLOATS = 16 << 10;
/** Where the scratch (row offsets, then gradients) starts; block storage follows it. */
const SCRATCH_AT = 0;

/**
 * Rows whose lines the WASM `touch` loads (optimizer-kernels.ts) before the kernel or the gather
 * works on them: a dozen rows' misses overlap inside a block, and the block's lines (64 AdaGrad
 * rows of dim 64: 32 KiB) stay in L1/L2 until they are used. 32 to 128 were alike in C.
 */
const TOUCH_ROWS = 64;

/** (rows, count, g, n, ...scalars): see optimizer-kernels.ts. */
type Kernel = (...args: number[]) => void;
type Touch = (rows: number, count: number, bytes: number) => number;

/** Whether kernels and gathers touch their rows first (on; bench/store.ts turns it off for its A/B). */
let touchFirst = true;
export function setTouchFirst(on: boolean): void { touchFirst = on; }

/**
 * How one optimizer maps onto a kernel: its scalars (written into the call's arguments from `at`;
 * the JS references round the same values to f32), and whether it runs per row (step-dependent).
 */
interface Plan { kernel: string; scalars: (out: number[], at: number, step: number) => void; perRow: boolean }

const PLANS: Record<string, (h: Record<string, number>) => Plan> = {
  sgd: (h) => (h.weight_decay === 0
    ? { kernel: 'sgd', scalars: (o, a) => { o[a] = h.lr!; }, perRow: false }
    : { kernel: 'sgd_wd', scalars: (o, a) => { o[a] = h.lr!; o[a + 1] = h.weight_decay!; }, perRow: false }),
  adagrad: (h) => ({ kernel: 'adagrad', scalars: (o, a) => { o[a] = h.lr!; o[a + 1] = h.eps!; }, perRow: false }),
  adam: (h) => ({
    kernel: 'adam', perRow: true,
    scalars: (o, a, step) => {
      o[a] = h.beta1!; o[a + 1] = 1 - h.beta1!; o[a + 2] = h.beta2!; o[a + 3] = 1 - h.beta2!;
      o[a + 4] = 1 - Math.pow(h.beta1!, step); o[a + 5] = 1 - Math.pow(h.beta2!, step); o[a + 6] = h.lr!; o[a + 7] = h.eps!;
    },
  }),
};

/** Whether `optimizer` (by name) has a SIMD kernel on this Node. */
export function hasSimdKernel(optimizer: string): boolean {
  return optimizer in PLANS && kernelModule() !== null;
}

export class WasmRows {
  private readonly memory: WasmMemory;
  private readonly kernel: Kernel;
  private readonly gatherKernel: Kernel;
  private readonly touch: Touch;
  /** Where `touch` sums go, so their loads are never unused. */
  private touchSink = 0;
  private readonly plan: Plan;
  private readonly chunkRows: number;
  /** A row with its slots, in rows of `dim` floats (the kernel's arrays but the gradient). */
  private readonly rowFloats: number;
  private readonly gradAt: number;
  private readonly args: number[];
  private f32!: Float32Array;
  private i32!: Int32Array;
  /** Bytes in use (the scratch, then every block allocated), 16-byte aligned. */
  private top: number;
  /** Offset of the last allocation (-1: none). */
  private last = -1;
  /** Bumped when the memory grows: views on the old buffer are detached (length 0) then. */
  generation = 0;

  /**
   * Rows in WASM memory for a built-in optimizer, or null (no kernel for it, no WASM SIMD here, or
   * no memory). With `fixedBytes` the memory holds the scratch and exactly that much more, and
   * never grows (one alloc(fixedBytes) then succeeds and views on the buffer stay valid).
   */
  static create(optimizer: string, hyper: Record<string, number>, dim: number, fixedBytes?: number): WasmRows | null {
    const mod = kernelModule();
    const plan = PLANS[optimizer];
    if (!mod || !plan) return null;
    try {
      return new WasmRows(mod, plan(hyper), dim, fixedBytes);
    } catch {
      return null; // this process cannot reserve another WASM memory: the JS update it is
    }
  }

  private constructor(mod: object, plan: Plan, private readonly dim: number, fixedBytes?: number) {
    this.plan = plan;
    this.rowFloats = KERNELS[plan.kernel]!.arrays - 1;
    this.chunkRows = Math.max(1, Math.floor(CHUNK_FLOATS / dim));
    this.gradAt = SCRATCH_AT + ((this.chunkRows * 4 + 15) & ~15);
    this.top = (this.gradAt + this.chunkRows * dim * 4 + 15) & ~15;
    this.memory = fixedBytes === undefined ? newMemory(this.top, MAX_PAGES * PAGE_BYTES) : newMemory(this.top + ((fixedBytes + 15) & ~15));
    this.refresh();
    const exports = instantiate(mod, this.memory);
    this.kernel = exports[plan.kernel] as Kernel;
    this.gatherKernel = exports.gather as Kernel;
    this.touch = exports.touch as Touch;
    this.args = [SCRATCH_AT, 0, this.gradAt, dim];
    plan.scalars(this.args, 4, 1);
  }

  /** Whether the kernel reads each row's update count (Adam's bias correction): counted before each row's update. */
  get perRow(): boolean { return this.plan.perRow; }

  /** The memory's buffer (views on it are valid until `generation` changes). */
  get buffer(): ArrayBuffer { return this.memory.buffer; }

  /** Bytes of the memory in use: the scratch and every block. */
  get bytesUsed(): number { return this.top; }

  /** Byte offset of `bytes` of new zeroed storage, or -1 when the memory cannot hold them (4 GiB). */
  alloc(bytes: number): number {
    const at = this.top;
    if (!this.reserve(at + bytes)) return -1;
    this.last = at;
    return at;
  }

  /**
   * Grows the last allocation (at `at`) to `bytes` in place: the bytes after it are free, so
   * nothing is copied. False (nothing changed) when `at` is not the last one or there is no room.
   */
  resize(at: number, bytes: number): boolean {
    return at === this.last && this.reserve(at + bytes);
  }

  /** Makes the memory at least `end` bytes (pages zeroed by WASM) and moves the top there. */
  private reserve(end: number): boolean {
    end = (end + 15) & ~15;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      try { this.memory.grow(Math.ceil((end - have) / PAGE_BYTES)); } catch { return false; }
      this.refresh();
      this.generation++;
    }
    this.top = Math.max(this.top, end);
    return true;
  }

  /**
   * Updates the rows at byte offsets rowAt[b..e) (the row, then its slots, in this memory) from
   * grads[i * dim ..] for row i, in order. `step(i)` counts row i's update and returns its count;
   * null where the kernel does not read counts (not `perRow`) and the caller counts the rows itself.
   */
  run(rowAt: Int32Array, b: number, e: number, grads: Float32Array, step: ((i: number) => number) | null): void {
    const d = this.dim, i32 = this.i32, f32 = this.f32;
    for (let c = b; c < e; c += this.chunkRows) {
      const ce = Math.min(e, c + this.chunkRows);
      for (let i = c; i < ce; i++) i32[(SCRATCH_AT >> 2) + i - c] = rowAt[i]!;
      f32.set(grads.subarray(c * d, ce * d), this.gradAt >> 2);
      this.call(c, ce, step);
    }
  }

  /**
   * Like run over the list rowAt[0..n), the gradient of entry i being row gradRow[i] of `grads`
   * (a push's rows of which only some are held): copied into the scratch word by word, then
   * `round` (if given) applied to each chunk's gradients there, in place (the wire's rounding).
   */
  runAt(rowAt: Int32Array, gradRow: Int32Array, n: number, grads: Float32Array, step: (i: number) => number, round?: (g: Float32Array) => void): void {
    const d = this.dim, i32 = this.i32, g32 = new Int32Array(grads.buffer, grads.byteOffset, grads.length), ga = this.gradAt >> 2;
    for (let c = 0; c < n; c += this.chunkRows) {
      const ce = Math.min(n, c + this.chunkRows);
      for (let i = c; i < ce; i++) {
        i32[(SCRATCH_AT >> 2) + i - c] = rowAt[i]!;
        copyRow(i32, ga + (i - c) * d, g32, gradRow[i]! * d, d);
      }
      round?.(this.f32.subarray(ga, ga + (ce - c) * d));
      this.call(c, ce, step);
    }
  }

  /**
   * The first `floats` floats of the rows at byte offsets rowAt[b..e), one after the other, into
   * `out` from `outAt`: gathered by memory.copy into the scratch, then one set() a chunk.
   */
  gather(rowAt: Int32Array, b: number, e: number, floats: number, out: Float32Array, outAt: number): void {
    const i32 = this.i32, ga = this.gradAt >> 2, chunk = Math.min(this.chunkRows, Math.max(1, Math.floor(this.chunkRows * this.dim / floats)));
    for (let c = b; c < e; c += chunk) {
      const ce = Math.min(e, c + chunk), m = ce - c;
      for (let i = c; i < ce; i++) i32[(SCRATCH_AT >> 2) + i - c] = rowAt[i]!;
      if (!touchFirst) this.gatherKernel(SCRATCH_AT, m, this.gradAt, floats * 4);
      else {
        for (let t = 0; t < m; t += TOUCH_ROWS) {
          const k = Math.min(TOUCH_ROWS, m - t);
          this.touchSink += this.touch(SCRATCH_AT + t * 4, k, floats * 4);
          this.gatherKernel(SCRATCH_AT + t * 4, k, this.gradAt + t * floats * 4, floats * 4);
        }
      }
      out.set(this.f32.subarray(ga, ga + m * floats), outAt + (c - b) * floats);
    }
  }

  /** The kernel over list entries c..ce, whose row offsets and gradients are in the scratch. */
  private call(c: number, ce: number, step: ((i: number) => number) | null): void {
    const d = this.dim, args = this.args, kernel = this.kernel;
    const rowBytes = d * 4 * this.rowFloats; // the row and its slots
    if (!this.plan.perRow) {
      if (step) for (let i = c; i < ce; i++) step(i);
      if (!touchFirst) { args[0] = SCRATCH_AT; args[1] = ce - c; args[2] = this.gradAt; kernel.apply(null, args); return; }
      for (let t = 0; t < ce - c; t += TOUCH_ROWS) {
        const k = Math.min(TOUCH_ROWS, ce - c - t);
        this.touchSink += this.touch(SCRATCH_AT + t * 4, k, rowBytes);
        args[0] = SCRATCH_AT + t * 4; args[1] = k; args[2] = this.gradAt + t * d * 4;
        kernel.apply(null, args);
      }
      return;
    }
    for (let i = c; i < ce; i++) {
      if (touchFirst && (i - c) % TOUCH_ROWS === 0) this.touchSink += this.touch(SCRATCH_AT + (i - c) * 4, Math.min(TOUCH_ROWS, ce - i), rowBytes);
      args[0] = SCRATCH_AT + (i - c) * 4; args[1] = 1; args[2] = this.gradAt + (i - c) * d * 4;
      this.plan.scalars(args, 4, step!(i));
      kernel.apply(null, args);
    }
  }

  private refresh(): void {
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }
}
