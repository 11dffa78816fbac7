// Which slot of a RowCache (row-cache.ts) holds which key, and when each was read and last used:
// the key index (a KeyIndex over the keys' words), the free slots, and eviction. The rows
// themselves and what makes one servable are the cache's; eviction asks it which rows are dead.
//
// Eviction frees at least an eighth of the capacity a pass: the dead rows first (the cache's
// `dead`: expired, and for a stateful optimizer no usable state either), then the least recently
// used, never a row used at the current clock. KeyIndex has no delete, so a pass rebuilds the
// index from the slots still held: an eighth of the capacity per pass keeps that rare.
import { KeyIndex } from '../keys/key-index.ts';

export class CacheSlots {
  readonly index: KeyIndex;
  /** Per slot: SSP, the reply's freshness; ASP, the clock the row was read at. -1: free. */
  readonly stamp: Int32Array;
  /** Per slot: the clock the row was last served or placed at (eviction's order). */
  readonly lastUse: Int32Array;
  /** Stateful: per slot, the clock its optimizer state was read at (-1: none); empty when stateless. */
  readonly stateClock: Int32Array;
  private readonly keyLo: Uint32Array;
  private readonly keyHi: Uint32Array;
  private free: number[] = [];

  constructor(readonly capacity: number, stateful: boolean) {
    this.index = new KeyIndex(capacity);
    this.stamp = new Int32Array(capacity).fill(-1);
    this.lastUse = new Int32Array(capacity);
    this.stateClock = new Int32Array(stateful ? capacity : 0).fill(-1);
    this.keyLo = new Uint32Array(capacity);
    this.keyHi = new Uint32Array(capacity);
    this.refill();
  }

  /** Slots held. */
  get size(): number { return this.capacity - this.free.length; }

  /** Whether every slot is held (the next `take` needs an eviction first). */
  get full(): boolean { return this.free.length === 0; }

  /** A free slot, now key (lo, hi)'s in the index; -1 when none is free. */
  take(lo: number, hi: number): number {
    const s = this.free.pop();
    if (s === undefined) return -1;
    this.index.insert(lo, hi, s);
    this.keyLo[s] = lo;
    this.keyHi[s] = hi;
    return s;
  }

  /** Forgets every key. */
  clear(): void {
    this.index.clear();
    this.stamp.fill(-1);
    this.stateClock.fill(-1);
    this.refill();
  }

  /** Frees dead rows, then the least recently used (never one used at `clock`) up to an eighth of the capacity; returns how many it freed. */
  evict(clock: number, dead: (s: number) => boolean): number {
    const n = this.capacity, target = Math.max(1, Math.ceil(n / 8));
    const live: number[] = [];
    let freed = 0;
    for (let s = 0; s < n; s++) {
      if (this.stamp[s]! < 0) continue;
      if (dead(s)) { this.drop(s); freed++; } else live.push(s);
    }
    if (freed < target) {
      live.sort((a, b) => this.lastUse[a]! - this.lastUse[b]!);
      for (const s of live) {
        if (freed >= target || this.lastUse[s]! >= clock) break;
        this.drop(s);
        freed++;
      }
    }
    this.index.clear();
    this.free = [];
    for (let s = n - 1; s >= 0; s--) {
      if (this.stamp[s]! < 0) this.free.push(s);
      else this.index.insert(this.keyLo[s]!, this.keyHi[s]!, s);
    }
    return freed;
  }

  private drop(s: number): void {
    this.stamp[s] = -1;
    if (this.stateClock.length) this.stateClock[s] = -1;
  }

  /** Every slot free, the lowest taken first (new rows fill the storage from its start). */
  private refill(): void {
    this.free = [];
    for (let s = this.capacity - 1; s >= 0; s--) this.free.push(s);
  }
}
