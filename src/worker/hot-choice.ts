// Which rows of each BSP table are hot (src/worker/hot-rows.ts), chosen from the data: the ids
// counted over the first batches rank 0 trains on (its own slice: with skewed ids the slices
// share their head, and reading them costs nothing extra, as they are the batches it trains on
// next), the `budget` most frequent per table, ties broken by the smaller id, ids seen once left
// out (a row used once gains nothing from being held). The generator's statistics would only
// exist for synthetic data; counting works for any file.
//
// Every worker must hold the same keys, or the allreduce would sum different rows' gradients:
// rank 0 publishes its choice through the dense allreduce (everyone else contributes zeros, so
// the sum is rank 0's vector exactly). Keys travel as six 8-bit pieces each (keys < 2^48):
// integers below 256 stay exact even when the ring sends fp16 (--f16; exact up to 2048).
import type { TableBatch } from '../model/batch-prep.ts';
import { keysFromNumbers } from '../keys/keys.ts';

/**
 * Per table, the `budget` most frequent ids (seen at least twice) of `batches` (each a list of
 * tables), most frequent first. Counted by sorting each table's ids (a typed-array sort, then
 * runs), yielding to the event loop between tables: 256k samples x 26 tables counted in a Map held
 * a bench worker's loop for over 10 s at load 20, and the scheduler declared it dead (no heartbeat).
 */
export async function chooseHotKeys(batches: TableBatch[][], tables: number, budget: number): Promise<BigUint64Array[]> {
  if (!(Number.isInteger(budget) && budget >= 0)) throw new Error(`hot rows: budget ${budget} must be an integer >= 0`);
  const out: BigUint64Array[] = [];
  for (let t = 0; t < tables; t++) {
    const all = new Float64Array(batches.reduce((a, b) => a + b[t]!.ids.length, 0));
    let at = 0;
    for (const b of batches) { const ids = b[t]!.ids; for (let j = 0; j < ids.length; j++) all[at++] = ids[j]!; }
    all.sort();
    const ids: number[] = [], counts: number[] = [];
    for (let i = 0; i < all.length;) {
      let j = i + 1;
      while (j < all.length && all[j] === all[i]) j++;
      if (j - i >= 2) { ids.push(all[i]!); counts.push(j - i); }
      i = j;
    }
    // ids ascend, and the sort is stable: ties stay in id order.
    const order = ids.map((_, k) => k).sort((a, b) => counts[b]! - counts[a]!);
    out.push(keysFromNumbers(order.slice(0, budget).map((k) => ids[k]!)));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return out;
}

const PIECE = 256, PIECES = 6, COUNT_PIECES = 3;

/** Integer `v` as `n` base-256 pieces at out[at..), least significant first. */
function putPieces(out: Float32Array, at: number, v: number, n: number): void {
  for (let p = 0; p < n; p++, v = Math.floor(v / PIECE)) out[at + p] = v % PIECE;
}

function getPieces(v: Float32Array, at: number, n: number): number {
  let x = 0;
  for (let p = n - 1; p >= 0; p--) {
    const y = v[at + p]!;
    if (!(Number.isInteger(y) && y >= 0 && y < PIECE)) throw new Error(`hot rows: the published choice holds ${y}, not an 8-bit piece (two workers published?)`);
    x = x * PIECE + y;
  }
  return x;
}

/** Rank 0's choice as the vector it contributes to the publishing sum (others contribute zeros of the same length). */
export function encodeHotKeys(keys: BigUint64Array[] | null, tables: number, budget: number): Float32Array {
  const per = COUNT_PIECES + PIECES * budget, out = new Float32Array(tables * per);
  keys?.forEach((k, t) => {
    if (k.length > budget) throw new Error(`hot rows: table ${t} has ${k.length} keys, budget ${budget}`);
    putPieces(out, t * per, k.length, COUNT_PIECES);
    for (let r = 0; r < k.length; r++) putPieces(out, t * per + COUNT_PIECES + PIECES * r, Number(k[r]!), PIECES);
  });
  return out;
}

/** The keys a publishing sum carried, checked (whole pieces, counts within the budget). */
export function decodeHotKeys(v: Float32Array, tables: number, budget: number): BigUint64Array[] {
  const per = COUNT_PIECES + PIECES * budget;
  if (v.length !== tables * per) throw new Error(`hot rows: the published choice has ${v.length} floats, expected ${tables * per} (${tables} tables, budget ${budget}): do all workers run with the same --hot-rows?`);
  return Array.from({ length: tables }, (_, t) => {
    const n = getPieces(v, t * per, COUNT_PIECES);
    if (n > budget) throw new Error(`hot rows: table ${t} published ${n} keys, budget ${budget}`);
    return keysFromNumbers(Array.from({ length: n }, (_, r) => getPieces(v, t * per + COUNT_PIECES + PIECES * r, PIECES)));
  });
}
