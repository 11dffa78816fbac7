// The BSP sums of one clock of one table: the row gradients every worker pushed for that clock,
// summed per key, so the update function runs once per row with the total (for AdaGrad/Adam,
// applying pushes one by one would not equal minibatch SGD with the global batch).
// Sums are float64, so the order pushes arrive in does not change the result; rows keep the order
// their keys were first seen in. Typed arrays only (docs/store.md): a KeyIndex from key to row,
// the keys as (lo, hi) words and the sums in growable slabs; reset() keeps the memory.
// A clock's first push is held as it came (addPush) and summed only when a second one arrives:
// with one worker it is the whole sum, and drain() gives the same bits either way.
import { KeyIndex } from '../keys/key-index.ts';
import { keyWords } from '../keys/keys.ts';
import { MAX_DIM } from './table-store.ts';

export class BspAccumulator {
  private readonly index: KeyIndex;
  private keys: Uint32Array; // lo, hi per row
  private sums: Float64Array;
  /** drain()'s f32 copy of the sums. */
  private rounded = new Float32Array(0);
  private count = 0;
  /** The clock's first push, held unsummed (addPush): its keys' words, its gradients, its rows (0: none). */
  private heldKeys = new Uint32Array(0);
  private heldGrads = new Float32Array(0);
  private held = 0;

  constructor(readonly dim: number, expectedRows = 0) {
    if (!Number.isInteger(dim) || dim < 1 || dim > MAX_DIM) throw new RangeError(`BspAccumulator: dim ${dim} is not an integer in [1, ${MAX_DIM}]`);
    const cap = Math.max(16, expectedRows);
    this.index = new KeyIndex(expectedRows);
    this.keys = new Uint32Array(cap * 2);
    this.sums = new Float64Array(cap * dim);
  }

  get rows(): number { return this.count + this.held; }

  /**
   * add() for a push, whose keys are unique (request-checks.ts refuses a push with a key twice):
   * the first of a clock is copied as it is, not summed; the next add() sums it first. In f64,
   * 0 + g is g, and g rounds back to the same f32, so drain() gives the same bits as summing
   * (-0 written as +0, as 0 + -0 is). With one worker, 2 servers, AdaGrad, the gpu preset, the
   * summing (add + drain, ~11k rows a server) cost ~3.6 ms of a server's CPU a step.
   */
  addPush(keys: BigUint64Array, grads: Float32Array): void {
    const n = keys.length, len = n * this.dim;
    if (this.count + this.held > 0 || n === 0 || grads.length !== len) { this.add(keys, grads); return; }
    if (this.heldGrads.length < len) this.heldGrads = new Float32Array(len);
    if (this.heldKeys.length < 2 * n) this.heldKeys = new Uint32Array(2 * n);
    this.heldKeys.set(keyWords(keys));
    this.heldGrads.set(grads);
    this.held = n;
  }

  /** Adds one gradient row per key (keys.length x dim values; a key seen before is summed into). */
  add(keys: BigUint64Array, grads: ArrayLike<number>): void {
    const n = keys.length, d = this.dim;
    if (grads.length !== n * d) throw new RangeError(`BspAccumulator.add: grads length ${grads.length} does not match ${n} keys x dim ${d}`);
    this.foldHeld();
    this.addWords(keyWords(keys), grads, n);
  }

  /** The held push summed in like any other (a second push of the clock arrived, or a snapshot). */
  private foldHeld(): void {
    const n = this.held;
    if (n === 0) return;
    this.held = 0;
    this.addWords(this.heldKeys, this.heldGrads, n);
  }

  private addWords(w: Uint32Array, grads: ArrayLike<number>, n: number): void {
    const d = this.dim;
    for (let i = 0; i < n; i++) {
      const lo = w[2 * i]!, hi = w[2 * i + 1]!;
      let r = this.index.lookup(lo, hi);
      if (r < 0) {
        r = this.count;
        if (r * 2 === this.keys.length) this.grow();
        this.index.insert(lo, hi, r);
        this.keys[2 * r] = lo; this.keys[2 * r + 1] = hi;
        this.count++;
      }
      const sums = this.sums, o = r * d, g = i * d;
      for (let j = 0; j < d; j++) sums[o + j]! += grads[g + j]!;
    }
  }

  /** Copies of the running f64 sums of the rows `keep` selects, in first-seen order (for a copy to another server). */
  snapshot(keep: (lo: number, hi: number) => boolean): { keys: BigUint64Array; sums: Float64Array } {
    this.foldHeld();
    const d = this.dim, picked: number[] = [];
    for (let r = 0; r < this.count; r++) if (keep(this.keys[2 * r]!, this.keys[2 * r + 1]!)) picked.push(r);
    const keys = new BigUint64Array(picked.length), kw = keyWords(keys);
    const sums = new Float64Array(picked.length * d);
    picked.forEach((r, i) => {
      kw[2 * i] = this.keys[2 * r]!; kw[2 * i + 1] = this.keys[2 * r + 1]!;
      sums.set(this.sums.subarray(r * d, (r + 1) * d), i * d);
    });
    return { keys, sums };
  }

  /**
   * The summed rows (rounded to f32) with their keys in first-seen order (a held push alone: as it
   * came); then resets. Both are views of this accumulator's memory, valid until its next add()
   * or addPush(): a clock's sums are applied straight from them, and the accumulator is reused
   * for a later clock with its capacity (ConsistencyGate), so a clock allocates nothing once the
   * tables have grown.
   */
  drain(): { keys: BigUint64Array; grads: Float32Array } {
    if (this.held > 0) return this.drainHeld();
    const n = this.count, len = n * this.dim;
    // (lo, hi) word pairs are the little-endian u64 keys.
    const keys = new BigUint64Array(this.keys.buffer, 0, n);
    if (this.rounded.length < len) this.rounded = new Float32Array(Math.max(len, this.sums.length));
    const grads = this.rounded.subarray(0, len);
    grads.set(this.sums.subarray(0, len)); // native f64 -> f32 conversion (Float32Array.from iterated)
    this.reset();
    return { keys, grads };
  }

  /** drain() of the held push alone: its keys and gradients, each -0 as +0 (what its f64 sum gives). */
  private drainHeld(): { keys: BigUint64Array; grads: Float32Array } {
    const n = this.held, len = n * this.dim;
    this.held = 0;
    const grads = this.heldGrads.subarray(0, len), bits = new Uint32Array(grads.buffer, grads.byteOffset, len);
    for (let i = 0; i < len; i++) if (bits[i] === 0x80000000) bits[i] = 0; // an integer test: ~0.8 ms for 712k floats
    return { keys: new BigUint64Array(this.heldKeys.buffer, 0, n), grads };
  }

  /** Forgets every row, keeping the memory. */
  reset(): void {
    this.held = 0;
    this.sums.fill(0, 0, this.count * this.dim);
    this.index.clear();
    this.count = 0;
  }

  private grow(): void {
    const cap = this.keys.length; // twice the rows: the new row capacity
    const k = new Uint32Array(cap * 2);
    k.set(this.keys);
    this.keys = k;
    const s = new Float64Array(cap * this.dim);
    s.set(this.sums);
    this.sums = s;
  }
}
