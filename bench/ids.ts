// The categorical ids the benchmarks draw, one generator for all of them so the kernels benchmark
// and the step benchmark see the same skew: id = floor(u^3 * rows), u uniform (a power law with
// density ~ id^(-2/3): a few hot rows, a long tail). At the gpu preset (100k rows per table) a
// batch of 2048 has ~0.91 unique ids per sample per table, 512 has ~0.94 (measured by
// uniquePerSample below; the planted Zipf(1.1) of src/data/synthetic.ts gives ~0.43 and ~0.52).

/** xorshift32 in [0, 1), deterministic in the seed. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
}

/** B ids in [0, rows) with the benchmarks' skew. */
export function skewedIds(B: number, rows: number, rnd: () => number): Uint32Array {
  return Uint32Array.from({ length: B }, () => Math.min(rows - 1, Math.floor(Math.pow(rnd(), 3) * rows)));
}

/** Unique ids per sample of one table's batch. */
export function uniquePerSample(ids: ArrayLike<number>): number {
  return ids.length ? new Set(Array.from(ids)).size / ids.length : 0;
}
