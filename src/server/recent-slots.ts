// The slots of the last few key lists a table resolved (TableStore.slotsOf): a worker pushes the
// gradients of the very rows it has just pulled, in the same order, so the push's keys are found
// here by one comparison of their words instead of an index probe per key, each a cache miss in
// a large table. A row's slot never changes once the row exists (rows are never removed; a
// rehash moves buckets, not slots), so an entry stays valid for its table's life.
// A pull then the push of the same 4096 random rows of a 1M x 64 AdaGrad table: the push's check
// and apply 1.09-1.23 -> 0.94-1.02 ms, the pull +0.01 ms (bench/RESULTS.md, 2026-12-02 session 8).

/** Key lists shorter than this are not kept: their probes are few, the copy would cost about as much. */
const MIN_KEYS = 64;
/** Nor longer than this (a handoff's pages, a checkpoint's): what is kept stays small (768 KiB an entry at most). */
const MAX_KEYS = 1 << 16;

interface Entry { words: Uint32Array; slots: Int32Array; n: number }

export class SlotsMemo {
  /** Most recently used first. Four: two workers' pulls and pushes interleaved at one server still meet theirs. */
  private readonly entries: Entry[] = [];

  constructor(private readonly size = 4) {}

  /** The slots of key list `words` (two u32 words a key) if it is one of the last resolved, else null. Valid until the next remember(). */
  find(words: Uint32Array): Int32Array | null {
    const n = words.length >> 1;
    if (n < MIN_KEYS || n > MAX_KEYS) return null;
    for (let k = 0; k < this.entries.length; k++) {
      const e = this.entries[k]!;
      if (e.n !== n || !sameWords(e.words, words, 2 * n)) continue;
      if (k > 0) { this.entries.splice(k, 1); this.entries.unshift(e); }
      return e.slots;
    }
    return null;
  }

  /** Keeps key list `words` and its slots[0..n) (copied), in place of the least recently used. */
  remember(words: Uint32Array, slots: Int32Array, n: number): void {
    if (n < MIN_KEYS || n > MAX_KEYS) return;
    let e = this.entries.length < this.size ? undefined : this.entries.pop();
    if (!e || e.slots.length < n) e = { words: new Uint32Array(2 * n), slots: new Int32Array(n), n };
    e.words.set(words.subarray(0, 2 * n));
    e.slots.set(slots.subarray(0, n));
    e.n = n;
    this.entries.unshift(e);
  }
}

/** a[0..len) === b[0..len); stops at the first difference (a different list differs in its first key, nearly always). */
function sameWords(a: Uint32Array, b: Uint32Array, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[i] !== b[i]) return false;
  return true;
}
