// Open-addressing hash index from a u64 key (two u32 words) to a u32 slot, in typed arrays only.
// Linear probing over a power-of-two table, grown by doubling (full rehash) before the load factor
// passes MAX_LOAD. Each bucket is three consecutive u32 words [lo, hi, slot + 1] in one
// Uint32Array, so one probe touches one cache line instead of three parallel arrays; a stored 0
// in the slot word marks an empty bucket, which makes a freshly allocated table all-empty.
// There is no delete: table rows are never removed (clear() empties the whole index).
import { fmix32 } from '../util/hash.ts';

export { fmix32 };

/** Largest slot value the index can hold (the slot word stores slot + 1). */
export const MAX_SLOT = 0xffff_fffe;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SEED = 0x9747b28c;

/**
 * 32-bit hash of a 64-bit key given as (lo, hi) words: murmur3_x86_32 of the key's 8 little-endian
 * bytes (two 4-byte blocks, then the fmix32 finalizer), all in Math.imul 32-bit arithmetic.
 * Every input bit affects every output bit, so the low bits used for the bucket are as good as
 * the high ones, also for sequential row ids and keys that differ only in the high word.
 */
export function hash64(lo: number, hi: number): number {
  let k = Math.imul(lo, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  let h = SEED ^ k;
  h = (h << 13) | (h >>> 19);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  k = Math.imul(hi, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  h ^= 8; // length in bytes
  return fmix32(h);
}


const WORDS = 3; // per bucket: lo, hi, slot + 1
const MIN_CAPACITY = 16;

export class KeyIndex {
  /** Buckets grow (double) before size / capacity would exceed this. */
  static readonly MAX_LOAD = 0.7;
  private table: Uint32Array;
  private mask: number;
  private count = 0;
  private growAt: number;

  /** `expected`: number of keys to size the table for up front (avoids rehashes). */
  constructor(expected = 0) {
    const cap = KeyIndex.capacityFor(expected);
    this.table = new Uint32Array(cap * WORDS);
    this.mask = cap - 1;
    this.growAt = Math.floor(cap * KeyIndex.MAX_LOAD);
  }

  /** The power-of-two bucket count that holds `n` keys at or under MAX_LOAD. */
  static capacityFor(n: number): number {
    let cap = MIN_CAPACITY;
    while (Math.floor(cap * KeyIndex.MAX_LOAD) < n) cap *= 2;
    return cap;
  }

  /** Number of keys stored. */
  get size(): number { return this.count; }
  /** Number of buckets. */
  get capacity(): number { return this.mask + 1; }
  /** Bytes held by the index. */
  get bytes(): number { return this.table.byteLength; }

  /** The slot stored for key (lo, hi), or -1 if absent. */
  lookup(lo: number, hi: number): number {
    return this.lookupHashed(lo >>> 0, hi >>> 0, hash64(lo >>> 0, hi >>> 0));
  }

  /** lookup() of a key whose hash64 `h` the caller has (a loop that hashed it to touch it), its words as u32. */
  lookupHashed(lo: number, hi: number, h: number): number {
    const t = this.table, mask = this.mask;
    let b = h & mask;
    for (;;) {
      const i = b * WORDS;
      const s = t[i + 2]!;
      if (s === 0) return -1;
      if (t[i] === lo && t[i + 1] === hi) return s - 1;
      b = (b + 1) & mask;
    }
  }

  /**
   * Reads the key's home bucket and returns its slot word, for nothing but its side effect: a
   * loop of these over many keys has independent loads, so the CPU fetches all their cache lines
   * at once, and the lookups right after find them in cache (see TableStore's touch blocks).
   */
  touch(lo: number, hi: number): number {
    return this.touchHashed(hash64(lo >>> 0, hi >>> 0));
  }

  /** touch() of a key by its hash64. */
  touchHashed(h: number): number {
    return this.table[(h & this.mask) * WORDS + 2]!;
  }

  /** Stores key -> slot, replacing the slot if the key is present. */
  insert(lo: number, hi: number, slot: number): void {
    this.lookupOrInsert(lo, hi, slot, true);
  }

  /**
   * Returns the key's slot if present (and, with `replace`, overwrites it with `slot`);
   * otherwise inserts key -> slot and returns -1. One probe sequence for the common
   * "find, else create" path.
   */
  lookupOrInsert(lo: number, hi: number, slot: number, replace = false): number {
    if (!(slot >= 0 && slot <= MAX_SLOT && Number.isInteger(slot))) {
      throw new RangeError(`KeyIndex slot ${slot} is not an integer in [0, ${MAX_SLOT}]`);
    }
    lo >>>= 0; hi >>>= 0;
    if (this.count >= this.growAt) {
      // Grow only when the key is new, so lookups of present keys never rehash.
      const have = this.lookup(lo, hi);
      if (have >= 0) {
        if (replace) this.place(lo, hi, slot);
        return have;
      }
      this.rehash(this.capacity * 2);
    }
    const t = this.table, mask = this.mask;
    let b = hash64(lo, hi) & mask;
    for (;;) {
      const i = b * WORDS;
      const s = t[i + 2]!;
      if (s === 0) {
        t[i] = lo; t[i + 1] = hi; t[i + 2] = slot + 1;
        this.count++;
        return -1;
      }
      if (t[i] === lo && t[i + 1] === hi) {
        if (replace) t[i + 2] = slot + 1;
        return s - 1;
      }
      b = (b + 1) & mask;
    }
  }

  /** Overwrites the slot of a key known to be present. */
  private place(lo: number, hi: number, slot: number): void {
    const t = this.table, mask = this.mask;
    let b = hash64(lo, hi) & mask;
    while (!(t[b * WORDS] === lo && t[b * WORDS + 1] === hi && t[b * WORDS + 2] !== 0)) b = (b + 1) & mask;
    t[b * WORDS + 2] = slot + 1;
  }

  /** Makes room for `n` keys in total without further rehashing. */
  reserve(n: number): void {
    const cap = KeyIndex.capacityFor(n);
    if (cap > this.capacity) this.rehash(cap);
  }

  private rehash(cap: number): void {
    const old = this.table;
    const t = new Uint32Array(cap * WORDS);
    const mask = cap - 1;
    for (let i = 0; i < old.length; i += WORDS) {
      const s = old[i + 2]!;
      if (s === 0) continue;
      const lo = old[i]!, hi = old[i + 1]!;
      let b = hash64(lo, hi) & mask;
      while (t[b * WORDS + 2] !== 0) b = (b + 1) & mask;
      const j = b * WORDS;
      t[j] = lo; t[j + 1] = hi; t[j + 2] = s;
    }
    this.table = t;
    this.mask = mask;
    this.growAt = Math.floor(cap * KeyIndex.MAX_LOAD);
  }

  /** Removes every key, keeping the memory. */
  clear(): void {
    if (this.count === 0) return;
    this.table.fill(0);
    this.count = 0;
  }

  /** Calls fn for every (lo, hi, slot), in bucket order. Do not insert during the walk. */
  forEach(fn: (lo: number, hi: number, slot: number) => void): void {
    const t = this.table;
    for (let i = 0; i < t.length; i += WORDS) {
      const s = t[i + 2]!;
      if (s !== 0) fn(t[i]!, t[i + 1]!, s - 1);
    }
  }

  /** Iterates [lo, hi, slot] triples in bucket order. */
  *entries(): IterableIterator<[lo: number, hi: number, slot: number]> {
    const t = this.table;
    for (let i = 0; i < t.length; i += WORDS) {
      const s = t[i + 2]!;
      if (s !== 0) yield [t[i]!, t[i + 1]!, s - 1];
    }
  }

  [Symbol.iterator](): IterableIterator<[lo: number, hi: number, slot: number]> {
    return this.entries();
  }
}
