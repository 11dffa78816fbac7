// How a table store (table-store.ts) lays its rows out: blocks of BLOCK_ROWS rows, touched in
// blocks of TOUCH_BLOCK rows (rows are copied word by word: src/util/row-words.ts), each block's
// update counts in an array of their own (counted block by block: countByBlock); the numbers
// that chose each.
/**
 * Rows handled per touch block. Random rows of a large table miss every cache level; a loop that
 * only loads one word per cache line of each row in a block has independent loads that the CPU
 * overlaps, and the loop that then copies or updates those rows finds them in cache. Measured on
 * 4096 random rows of a 1M x 64 table: pull 1.7 -> 1.15 ms, SGD apply 2.1 -> 1.55 ms (docs/store.md).
 */
export const TOUCH_BLOCK = 64;
/**
 * Rows per storage block. A table grows by adding a block, never by copying what it holds: with
 * one slab per table, 26 AdaGrad tables filled in step regrew together, and one request's copies
 * held a server's event loop for up to 14.5 s at 250k rows per table (the scheduler declared the
 * servers of `bench step --scale-rows 1000000` dead: no heartbeat for 10 s). The same fill of
 * 26 x 150k rows in 4096-row pulls, one run (load 9-13): 38.1 -> 19.2 s, longest pull 6.5 -> 2.0 s.
 * 2^15 rows of dim 64 are 8 MiB a block: a table grown on demand has at most one block of slack.
 */
export const BLOCK_SHIFT = 15;
export const BLOCK_ROWS = 1 << BLOCK_SHIFT;
export const BLOCK_MASK = BLOCK_ROWS - 1;
/** 64-byte cache lines hold 16 floats. */
export const FLOATS_PER_LINE = 16;

let byBlock = new Int32Array(0); // countByBlock's scratch, reused
/**
 * ++steps of rows[0..n), block by block: a counting sort of the slots by block first. Each count
 * is a miss of its own (they are stored apart from the rows); in block order a block's counts are
 * one 128 KiB array at a time. TableStore.apply of 4096 random rows of 1M x 64 AdaGrad, 8
 * alternated runs: after a pull of its rows 0.70-0.73 -> 0.59-0.68 ms, cold 1.13-1.26 -> 1.07-1.16
 * ms (without any counting 0.42 and 0.92: the real fix would be the count beside its row).
 */
export function countByBlock(rows: Int32Array, n: number, steps: Uint32Array[]): void {
  const nb = steps.length, start = new Int32Array(nb + 1);
  for (let i = 0; i < n; i++) start[(rows[i]! >>> BLOCK_SHIFT) + 1]!++;
  for (let b = 0; b < nb; b++) start[b + 1]! += start[b]!;
  if (byBlock.length < n) byBlock = new Int32Array(n);
  const at = start.slice(0, nb);
  for (let i = 0; i < n; i++) { const s = rows[i]!; byBlock[at[s >>> BLOCK_SHIFT]!++] = s; }
  for (let b = 0; b < nb; b++) {
    const st = steps[b]!, e = start[b + 1]!;
    for (let j = start[b]!; j < e; j++) st[byBlock[j]! & BLOCK_MASK]!++;
  }
}
