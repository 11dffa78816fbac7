// Per-table batch preparation: the unique row ids of a batch (first-occurrence order), the inverse
// index (occurrence -> unique slot) for the embedding gather, and the CSR of occurrences per
// unique row (as sample indices) for the segment-sum that reduces row gradients without atomics.
// Ids are deduplicated with an open-addressing hash in typed arrays (no Map per id). The unique
// rows can be laid out in another order as they are prepared (`orderRows`: the worker groups them
// by owning server, so that each server's part of a pull or push is one contiguous run, no
// gather or scatter per row); permuteTable reorders a prepared table the same way.
import { KEY_LIMIT, keyHi, keysFromNumbers } from '../keys/keys.ts';
import { gatherKeys } from '../keys/index-arrays.ts';

/** One table's ids in a batch: `ids[offsets[b] .. offsets[b+1])` are sample b's bag. */
export interface TableBatch {
  /** Row ids (integers in [0, 2^48)). */
  ids: ArrayLike<number>;
  /** Bag offsets, length B+1; omitted: one id per sample (offsets = 0..B). */
  offsets?: Uint32Array;
}

export interface PreparedTable {
  /** Unique row ids: first-occurrence order from prepareTable, any order after permuteTable. */
  unique: Float64Array;
  /** The same ids as PS keys. */
  keys: BigUint64Array;
  /** Occurrence -> unique slot (length NNZ). */
  inverse: Uint32Array;
  /** Bag offsets per sample (length B+1). */
  bagOffsets: Uint32Array;
  /** CSR over unique rows: occurrences of row u are csrItems[csrOffsets[u] .. csrOffsets[u+1]). */
  csrOffsets: Uint32Array;
  /** Sample index of each occurrence, grouped by unique row, in occurrence order within a row. */
  csrItems: Uint32Array;
}

function hashId(id: number): number {
  const lo = id >>> 0;
  const hi = id < 4294967296 ? 0 : keyHi(id) >>> 0; // most ids fit 32 bits: no division
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// Scratch hash table reused across calls (grown when needed) so the hot path does not allocate.
let scratchIds = new Float64Array(0);
let scratchUnique = new Int32Array(0);

function ensureScratch(cap: number): void {
  if (scratchIds.length < cap) {
    scratchIds = new Float64Array(cap);
    scratchUnique = new Int32Array(cap);
  }
}

/**
 * Bag offsets 0..B, one id per sample, shared by every table of that batch size (nothing writes
 * them): a new array per table per step cost ~0.5 ms a step at the gpu preset (26 tables).
 */
let iota = new Uint32Array(0);
function oneIdPerSample(B: number): Uint32Array {
  if (iota.length !== B + 1) { iota = new Uint32Array(B + 1); for (let b = 0; b <= B; b++) iota[b] = b; }
  return iota;
}

/** The rows of a table in another order (new row j is old row order[j]), with its keys in that order; order null: as they are. */
export type RowOrder = (keys: BigUint64Array) => { order: Int32Array | null; keys: BigUint64Array };

/**
 * The batch's unique ids, inverse index and CSR. With `orderRows` (the worker's grouping by owning
 * server), the rows are in the order it gives: the same result as permuteTable of the unordered
 * one, built in one pass (26 tables at the gpu preset: ~1.2 ms a step of permuteTable saved).
 */
export function prepareTable(batch: TableBatch, B: number, orderRows?: RowOrder): PreparedTable {
  const ids = batch.ids;
  const nnz = ids.length;
  let bagOffsets = batch.offsets;
  if (!bagOffsets) {
    if (nnz !== B) throw new Error(`batch prep: ${nnz} ids for ${B} samples without bag offsets (one id per sample expected)`);
    bagOffsets = oneIdPerSample(B);
  } else {
    if (bagOffsets.length !== B + 1) throw new Error(`batch prep: bag offsets have length ${bagOffsets.length}, expected B+1 = ${B + 1}`);
    if (bagOffsets[0] !== 0 || bagOffsets[B] !== nnz) throw new Error(`batch prep: bag offsets must run from 0 to ${nnz}, got ${bagOffsets[0]}..${bagOffsets[B]}`);
    for (let b = 0; b < B; b++) if (bagOffsets[b + 1] < bagOffsets[b]) throw new Error(`batch prep: bag offsets decrease at sample ${b}`);
  }

  let cap = 16;
  while (cap < nnz * 2) cap *= 2;
  const mask = cap - 1;
  ensureScratch(cap);
  const slotUnique = scratchUnique, slotIds = scratchIds;
  slotUnique.fill(-1, 0, cap);

  const inverse = new Uint32Array(nnz);
  const uniqueTmp = new Float64Array(nnz);
  const counts = new Uint32Array(nnz + 1);
  let U = 0;
  for (let i = 0; i < nnz; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < KEY_LIMIT) || !Number.isInteger(id)) throw new Error(`batch prep: id ${id} at occurrence ${i} is not an integer in [0, 2^48)`);
    let h = hashId(id) & mask;
    for (;;) {
      const u = slotUnique[h];
      if (u < 0) {
        slotUnique[h] = U;
        slotIds[h] = id;
        uniqueTmp[U] = id;
        inverse[i] = U;
        counts[U + 1]++;
        U++;
        break;
      }
      if (slotIds[h] === id) {
        inverse[i] = u;
        counts[u + 1]++;
        break;
      }
      h = (h + 1) & mask;
    }
  }

  // Word by word: a BigInt per key cost ~0.7 ms a step at the gpu preset.
  let keys = keysFromNumbers(uniqueTmp.subarray(0, U)), unique: Float64Array;
  const csrOffsets = new Uint32Array(U + 1);
  const grouped = orderRows?.(keys), order = grouped?.order ?? null;
  if (order) {
    // Rows in the given order: renumber the inverse index, lay the CSR's segments out in it.
    const rank = rankOf(order, U, grouped!.keys.length);
    keys = grouped!.keys;
    unique = new Float64Array(U);
    for (let j = 0; j < U; j++) {
      const o = order[j]!;
      unique[j] = uniqueTmp[o]!;
      csrOffsets[j + 1] = csrOffsets[j]! + counts[o + 1]!;
    }
    for (let i = 0; i < nnz; i++) inverse[i] = rank[inverse[i]!]!;
  } else {
    unique = uniqueTmp.slice(0, U);
    for (let u = 0; u < U; u++) csrOffsets[u + 1] = csrOffsets[u] + counts[u + 1];
  }
  // Counting sort of occurrences by unique slot (stable: occurrence order within a row).
  const cursor = csrOffsets.slice(0, U);
  const csrItems = new Uint32Array(nnz);
  for (let b = 0; b < B; b++) {
    for (let i = bagOffsets[b]; i < bagOffsets[b + 1]; i++) csrItems[cursor[inverse[i]]++] = b;
  }
  return { unique, keys, inverse, bagOffsets, csrOffsets, csrItems };
}

/** rank[o] = j where order[j] = o; refuses an order that is not a permutation of 0..U-1, or keys of another count. */
function rankOf(order: Int32Array, U: number, keysInOrder = U): Int32Array {
  if (order.length !== U) throw new Error(`permuteTable: order has ${order.length} entries for ${U} unique rows`);
  const rank = new Int32Array(U).fill(-1);
  for (let j = 0; j < U; j++) {
    const o = order[j]!;
    if (!(o >= 0 && o < U) || rank[o] !== -1) throw new Error(`permuteTable: order is not a permutation of 0..${U - 1} (entry ${j} is ${o})`);
    rank[o] = j;
  }
  if (keysInOrder !== U) throw new Error(`permuteTable: ${keysInOrder} keys in order for ${U} unique rows`);
  return rank;
}

export function prepareBatch(tables: TableBatch[], B: number): PreparedTable[] {
  return tables.map((t) => prepareTable(t, B));
}

/**
 * `p` with its unique rows in the order `order` (new row j is old row order[j]; a permutation of
 * 0..U-1): unique ids, keys and the CSR's segments moved, the inverse index renumbered. Each row's
 * occurrences keep their order, so the segment-sum adds a row's gradients in the same order and
 * the result is bit-identical; only where each row sits changes. `keysInOrder`: the keys already
 * permuted (the client's grouped array, which it recognises), used as they are.
 */
export function permuteTable(p: PreparedTable, order: Int32Array, keysInOrder?: BigUint64Array): PreparedTable {
  const U = p.unique.length, rank = rankOf(order, U, keysInOrder?.length);
  const unique = new Float64Array(U), keys = keysInOrder ?? gatherKeys(p.keys, order);
  const csrOffsets = new Uint32Array(U + 1), csrItems = new Uint32Array(p.csrItems.length);
  // Plain loops, no subarray per row: 26 tables x ~1850 rows took 3-4 ms with a set() of a
  // subarray per row, 0.6 ms like this.
  const items = p.csrItems, offsets = p.csrOffsets;
  let at = 0;
  for (let j = 0; j < U; j++) {
    const o = order[j]!, to = offsets[o + 1]!;
    unique[j] = p.unique[o]!;
    for (let k = offsets[o]!; k < to; k++) csrItems[at++] = items[k]!;
    csrOffsets[j + 1] = at;
  }
  const inverse = new Uint32Array(p.inverse.length);
  for (let i = 0; i < inverse.length; i++) inverse[i] = rank[p.inverse[i]!]!;
  return { unique, keys, inverse, bagOffsets: p.bagOffsets, csrOffsets, csrItems };
}
