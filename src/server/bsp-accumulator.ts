// Sums the row gradients of one BSP clock across workers, so the update function runs once per
import { keyAt, keysFromNumbers, keyWords } from '../keys/keys.ts';
// row with the total (for AdaGrad/Adam, applying pushes one by one would not equal minibatch SGD).
// Rows live in one growable slab; the key -> slot map is transient (one clock's touched rows).

export class BspAccumulator {
  private slots = new Map<number, number>(); // key (exact as a double: keys < 2^48) -> slot
  private keys: number[] = [];
  private sums: Float32Array;
  private acc: Float64Array; // summed in f64 so the order pushes arrive in does not change the result

  constructor(readonly dim: number) {
    this.sums = new Float32Array(0);
    this.acc = new Float64Array(64 * dim);
  }

  get rows(): number { return this.keys.length; }

  add(keys: BigUint64Array, grads: ArrayLike<number>): void {
    const words = keyWords(keys);
    const d = this.dim;
    for (let i = 0; i < keys.length; i++) {
      const k = keyAt(words, i);
      let s = this.slots.get(k);
      if (s === undefined) {
        s = this.keys.length;
        this.slots.set(k, s);
        this.keys.push(k);
        if ((s + 1) * d > this.acc.length) {
          const bigger = new Float64Array(this.acc.length * 2);
          bigger.set(this.acc);
          this.acc = bigger;
        }
      }
      const o = s * d, g = i * d;
      for (let j = 0; j < d; j++) this.acc[o + j]! += grads[g + j]!;
    }
  }

  /** The running f64 sums of the rows `keep` selects (by key as a number), for a handoff. */
  snapshot(keep: (key: number) => boolean): { keys: number[]; sums: number[] } {
    const keys: number[] = [], sums: number[] = [];
    const d = this.dim;
    this.keys.forEach((k, s) => {
      if (!keep(k)) return;
      keys.push(k);
      for (let j = 0; j < d; j++) sums.push(this.acc[s * d + j]!);
    });
    return { keys, sums };
  }

  /** The summed rows, keys in first-seen order. */
  drain(): { keys: BigUint64Array; grads: Float32Array } {
    const n = this.keys.length;
    const keys = keysFromNumbers(this.keys);
    this.sums = Float32Array.from(this.acc.subarray(0, n * this.dim));
    this.slots.clear();
    this.keys = [];
    this.acc.fill(0, 0, n * this.dim);
    return { keys, grads: this.sums };
  }
}
