// The slots of the last few key lists a table resolved (TableStore.slotsOf): a worker pushes the
// gradients of the very rows it has just pulled, in the same order, so the push's keys are found
// here by one comparison of their words instead of an index probe per key, each a cache miss in
// a large table. A row's slot never changes once the row exists (rows are never removed; a
// rehash moves buckets, not slots), so an entry stays valid for its table's life.
// A pull then the push of the same 4096 random rows of a 1M x 64 AdaGrad table: the push's check
// and apply 1.09-1.23 -> 0.94-1.02 ms, the pull +0.01 ms (bench/RESULTS.md, 2026-12-02 session 8).
//
// Under SSP a pipelined worker pulls a step's rows in two requests (those pulled early, during the
// GPU work before, and those the push then running touched, pulled after it), then pushes all of
// them: the push's list is the two lists interleaved, each in its own order. `find` also matches
// such a push, walking the two lists along it (a comparison or two a key, no probe).

/**
 * Key lists shorter than this are not kept: their probes are few, the copy would cost about as
 * much. Low enough to keep the re-pull of an SSP step's late rows (~80 keys a table and server
 * at the gpu preset), one half of the push `find` then matches.
 */
const MIN_KEYS = 16;
/** Nor longer than this (a handoff's pages, a checkpoint's): what is kept stays small (768 KiB an entry at most). */
const MAX_KEYS = 1 << 16;

interface Entry { words: Uint32Array; slots: Int32Array; n: number }

export class SlotsMemo {
  /** Most recently used first. Four: two workers' pulls and pushes interleaved at one server still meet theirs. */
  private readonly entries: Entry[] = [];
  /** The slots of the last list matched as two interleaved (valid until the next find). */
  private merged = new Int32Array(0);

  constructor(private readonly size = 4) {}

  /**
   * The slots of key list `words` (two u32 words a key) if it is one of the last resolved, or two
   * of them interleaved (each in its order), else null. Valid until the next find() or remember().
   */
  find(words: Uint32Array): Int32Array | null {
    const n = words.length >> 1;
    if (n < MIN_KEYS || n > MAX_KEYS) return null;
    const es = this.entries;
    for (let k = 0; k < es.length; k++) {
      const e = es[k]!;
      if (e.n !== n || !sameWords(e.words, words, 2 * n)) continue;
      if (k > 0) { es.splice(k, 1); es.unshift(e); }
      return e.slots;
    }
    for (let a = 0; a < es.length; a++) {
      for (let b = a + 1; b < es.length; b++) {
        if (es[a]!.n + es[b]!.n !== n) continue;
        if (this.merged.length < n) this.merged = new Int32Array(n);
        if (interleaved(es[a]!, es[b]!, words, n, this.merged)) return this.merged;
      }
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

/**
 * Whether `words` (n keys) is lists x and y interleaved, each in its order; if so `out` holds
 * every key's slot. Greedy (x's next key first): a key in both lists may make it miss a match
 * (then the caller probes), never make a wrong one, since a key's slot is the same in every list.
 */
function interleaved(x: Entry, y: Entry, words: Uint32Array, n: number, out: Int32Array): boolean {
  const xw = x.words, yw = y.words, xn = x.n, yn = y.n;
  let i = 0, j = 0;
  for (let k = 0; k < n; k++) {
    const lo = words[2 * k]!, hi = words[2 * k + 1]!;
    if (i < xn && xw[2 * i] === lo && xw[2 * i + 1] === hi) { out[k] = x.slots[i++]!; continue; }
    if (j < yn && yw[2 * j] === lo && yw[2 * j + 1] === hi) { out[k] = y.slots[j++]!; continue; }
    return false;
  }
  return true;
}

/** a[0..len) === b[0..len); stops at the first difference (a different list differs in its first key, nearly always). */
function sameWords(a: Uint32Array, b: Uint32Array, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[i] !== b[i]) return false;
  return true;
}
