// The arrays a worker's pulls write their rows into, lent to one step and taken back once its GPU
// work is done (the runner copies a step's rows into its packed upload before it waits on the
// GPU), so that steps allocate no row arrays. At the gpu preset those are ~12 MB a step, whose
// zeroing, page faults and garbage collections cost the worker ~2.5-3 ms of CPU a step against
// reused arrays (26 tables x 1850 rows x dim 64, in a loop on this machine: bench/RESULTS.md,
// session 14). An array is never lent twice at once: a step's early pulls and its own pulls each
// take their own, and what a step was lent goes back only after its rows are used (or, for early
// rows it dropped, after their pull settled).

/** Arrays kept per table beyond those in use (two steps' worth, and one of slack). */
const KEEP = 3;

export class RowArrays {
  private readonly free: Float32Array[][];

  constructor(tables: number) {
    this.free = Array.from({ length: tables }, () => []);
  }

  /** An array of at least `floats` floats for table `i`, lent until given back; its contents are stale. */
  lend(i: number, floats: number): Float32Array {
    const free = this.free[i]!;
    for (let k = free.length - 1; k >= 0; k--) {
      if (free[k]!.length >= floats) return free.splice(k, 1)[0]!;
    }
    free.pop(); // too small for this step's rows: let one go rather than keep it
    return new Float32Array(Math.ceil(floats * 1.25)); // room for the next steps' counts to vary
  }

  /** Takes back an array lent for table `i` (nothing may read or write it any more). */
  giveBack(i: number, a: Float32Array): void {
    const free = this.free[i]!;
    if (free.length < KEEP && !free.includes(a)) free.push(a);
  }
}

/** What one step was lent: given back together once the step's rows are used. */
export class Lent {
  private readonly items: { table: number; array: Float32Array; settled: Promise<unknown> }[] = [];

  constructor(private readonly arrays: RowArrays) {}

  /** `pull` writing into an array of at least `floats` floats lent for table `i` (back once `pull` settles and giveBack is called). */
  fill<T>(i: number, floats: number, pull: (into: Float32Array) => Promise<T>): Promise<T> {
    const array = this.arrays.lend(i, floats), p = pull(array);
    this.items.push({ table: i, array, settled: p.then(() => {}, () => {}) });
    return p;
  }

  /** Gives every array back, each once the pull writing it has settled. */
  giveBack(): void {
    for (const { table, array, settled } of this.items.splice(0)) void settled.then(() => this.arrays.giveBack(table, array));
  }
}
