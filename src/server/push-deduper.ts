// Remembers which rows of which (sender, seq) pushes this server has applied, so a push re-sent
// after a lost ack or a re-route is applied once per row.
//
// Per row, not per push: after a server dies, a client re-routes the rows of an unacknowledged
// push under the new view, and one push number can then reach a server as two disjoint parts,
// one as the chain's head and one forwarded as a replica of another head. Deduplicating whole
// push numbers dropped the second part (a lost update, found by the kill -9 replication test).
//
// A client numbers its pushes with one counter across all servers, so each server sees a sparse
// subset; we keep the last WINDOW numbers per sender, and the rows of the most recent ones up to
// KEY_BUDGET rows per sender, 2 MiB (a retry is of one of a worker's last few pushes: it waits for
// the answer before pushing much more). An older number whose rows were let go counts as applied
// in full, the conservative answer.
import type { AppliedPushMsg } from '../wire/codec.ts';
import { keyAt, keyNumber, keysFromNumbers, keyWords } from '../keys/keys.ts';

const WINDOW = 1 << 16;
const KEY_BUDGET = 1 << 18;

interface Entry {
  /** The applied rows' keys as u32 word pairs (lo, hi), in one or more parts; null: all of them. */
  parts: Uint32Array[] | null;
  /** The push's table (a push number covers one table); -1 when not known (a handoff's import). */
  table: number;
}

interface SenderSeqs {
  entries: Map<number, Entry>; // insertion order = age
  /**
   * The seqs of `entries` in insertion order, oldest from `first`: the one to evict is read here, not
   * from entries.keys().next(), which walks past every entry deleted before it (V8 keeps them as
   * holes until the map is rebuilt): with the window full, a one-row push's check and record
   * took 22-28 us, and take 2.0-2.7 us so (bench/RESULTS.md, 2026-12-02 session 8).
   */
  order: number[];
  first: number;
  /** Seqs whose rows are still kept, oldest first (from `head`), and how many words they hold. */
  withKeys: number[];
  head: number;
  words: number;
}

export class PushDeduper {
  private senders = new Map<string, SenderSeqs>();

  /** Forgets every push (a server starting over takes the applied pushes over with its rows). */
  clear(): void { this.senders.clear(); }

  /** Whether any row of (sender, seq) was applied here. */
  seen(sender: string, seq: number): boolean {
    return !!this.senders.get(sender)?.entries.has(seq);
  }

  /**
   * Positions in `keys` of the rows (sender, seq) has not applied here yet: null when the number
   * is new (every row), empty when it was applied in full.
   */
  unapplied(sender: string, seq: number, keys: BigUint64Array): Int32Array | null {
    const e = this.senders.get(sender)?.entries.get(seq);
    if (!e) return null;
    if (e.parts === null) return new Int32Array(0);
    const applied = new Set<number>();
    for (const w of e.parts) for (let i = 0; i < w.length; i += 2) applied.add(keyNumber(w[i]!, w[i + 1]!));
    const words = keyWords(keys);
    const out: number[] = [];
    for (let i = 0; i < keys.length; i++) if (!applied.has(keyAt(words, i))) out.push(i);
    return Int32Array.from(out);
  }

  /** Records rows of (sender, seq), a push to `table`, as applied; without `keys`, every row of it (a handoff's import). */
  record(sender: string, seq: number, keys?: BigUint64Array, table = -1): void {
    let s = this.senders.get(sender);
    if (!s) this.senders.set(sender, (s = { entries: new Map(), order: [], first: 0, withKeys: [], head: 0, words: 0 }));
    let e = s.entries.get(seq);
    if (!e) {
      if (s.entries.size >= WINDOW) {
        const oldest = s.order[s.first++]!;
        this.forgetRows(s, s.entries.get(oldest)!);
        s.entries.delete(oldest);
        if (s.first > 1024 && s.first * 2 > s.order.length) { s.order = s.order.slice(s.first); s.first = 0; }
      }
      s.entries.set(seq, (e = { parts: [], table }));
      s.order.push(seq);
      if (keys) s.withKeys.push(seq);
    }
    if (!keys) { this.forgetRows(s, e); e.parts = null; return; }
    if (e.parts === null) return; // already known applied in full
    const words = keyWords(keys).slice();
    e.parts.push(words);
    s.words += words.length;
    // Over budget: the oldest numbers' rows go; those numbers then count as applied in full.
    while (s.words > 2 * KEY_BUDGET && s.head < s.withKeys.length) {
      const old = s.entries.get(s.withKeys[s.head++]!);
      if (old) { this.forgetRows(s, old); old.parts = null; }
    }
    if (s.head > 1024 && s.head * 2 > s.withKeys.length) { s.withKeys = s.withKeys.slice(s.head); s.head = 0; }
  }

  private forgetRows(s: SenderSeqs, e: Entry): void {
    for (const w of e.parts ?? []) s.words -= w.length;
  }

  /**
   * The remembered pushes to `table` with their rows that `keep` selects (keys as numbers, exact
   * below 2^48): what a new replica needs along with copied sums (CopyPending).
   */
  appliedRows(table: number, keep: (key: number) => boolean): AppliedPushMsg[] {
    const out: AppliedPushMsg[] = [];
    for (const [sender, s] of this.senders) {
      for (const [seq, e] of s.entries) {
        if (e.table !== table || e.parts === null) continue;
        const keys: number[] = [];
        for (const w of e.parts) {
          for (let i = 0; i < w.length; i += 2) {
            const k = keyNumber(w[i]!, w[i + 1]!);
            if (keep(k)) keys.push(k);
          }
        }
        if (keys.length) out.push({ sender, seq, keys: keysFromNumbers(keys) });
      }
    }
    return out;
  }

  /** The remembered pushes whose rows were let go (applied in full, as far as anyone can tell). */
  wholePushes(): [string, number[]][] {
    const out: [string, number[]][] = [];
    for (const [sender, s] of this.senders) {
      const seqs = [...s.entries].filter(([, e]) => e.parts === null).map(([seq]) => seq);
      if (seqs.length) out.push([sender, seqs]);
    }
    return out;
  }
}
