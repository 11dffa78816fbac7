// Consistent hashing with virtual nodes. A key (table, row) hashes to a point on a 32-bit ring;
// the first virtual node clockwise owns it and the next R-1 distinct servers are its backups.
// Adding or removing one server moves only about 1/S of the keys.

import { fmix32 } from '../util/hash.ts';
import { iota } from '../keys/index-arrays.ts';
import { keyWords } from '../keys/keys.ts';


/** Placement hash of (table, 64-bit key given as lo/hi words). */
export function keyHash(table: number, lo: number, hi: number): number {
  return fmix32(fmix32(lo ^ Math.imul(table + 1, 0x9e3779b9)) ^ fmix32(hi + 0x7f4a7c15));
}

function stringHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

export class HashRing {
  private readonly points: Uint32Array;   // sorted vnode positions
  private readonly owners: Uint16Array;   // server index of each point
  /**
   * bucketStart[b]: index of the first point at or after b << bucketShift, so a lookup starts
   * there and steps past the (rarely any) points of its bucket below the hash instead of a binary
   * search: every key of every pull and push is placed (the worker) and checked (the server).
   */
  private bucketStart: Int32Array | null = null;
  private bucketShift = 0; // set with bucketStart
  readonly servers: readonly string[];

  constructor(servers: readonly string[], readonly vnodes = 64) {
    this.servers = [...servers];
    const pts: [number, number][] = [];
    servers.forEach((id, s) => {
      for (let v = 0; v < vnodes; v++) pts.push([stringHash(`${id}#${v}`), s]);
    });
    pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.points = Uint32Array.from(pts, (p) => p[0]);
    this.owners = Uint16Array.from(pts, (p) => p[1]);
  }

  /** The sorted vnode positions: between two consecutive ones every hash has the same chain. */
  get positions(): Uint32Array { return this.points; }
  /** The server index of each of `positions`. */
  get pointOwners(): Uint16Array { return this.owners; }

  /** Index of the first point at or after h (wrapping). */
  private pointIndex(h: number): number {
    const start = this.bucketStart ?? this.buildBuckets(), p = this.points;
    h >>>= 0;
    let i = start[h >>> this.bucketShift]!;
    while (i < p.length && p[i]! < h) i++;
    return i === p.length ? 0 : i;
  }

  /** The first point index of every bucket, made on the first lookup (views are made often, used less). */
  private buildBuckets(): Int32Array {
    // At least 8 buckets a point (a lookup then passes 1/8 of a point on average), 2^12..2^20 buckets.
    let bits = 12;
    while (bits < 20 && 1 << bits < 8 * this.points.length) bits++;
    const n = 1 << bits, shift = 32 - bits, start = new Int32Array(n), p = this.points;
    let i = 0;
    for (let b = 0; b < n; b++) {
      const low = b * 2 ** shift; // b << shift, as a non-negative number
      while (i < p.length && p[i]! < low) i++;
      start[b] = i;
    }
    this.bucketShift = shift;
    return (this.bucketStart = start);
  }

  /** Server index owning a hash. */
  ownerOfHash(h: number): number {
    if (this.servers.length === 0) throw new Error('no servers in the cluster view');
    return this.owners[this.pointIndex(h)]!;
  }

  /** Owner first, then up to r-1 distinct backups, as server indices. */
  chainOfHash(h: number, r: number): number[] {
    const chain: number[] = [];
    const want = Math.min(r, this.servers.length);
    let i = this.pointIndex(h);
    while (chain.length < want) {
      const s = this.owners[i]!;
      if (!chain.includes(s)) chain.push(s);
      i = (i + 1) % this.points.length;
    }
    return chain;
  }

  /**
   * Groups keys by owning server: returns, per server index, the positions of the keys it owns.
   * Keys are read as lo/hi words of the BigUint64Array's buffer (no BigInt math per key).
   */
  partition(table: number, keys: BigUint64Array): Int32Array[] {
    if (this.servers.length === 1) return [iota(keys.length)];
    const words = keyWords(keys);
    const n = keys.length;
    const owner = new Uint16Array(n);
    const counts = new Int32Array(this.servers.length);
    for (let i = 0; i < n; i++) {
      const s = this.ownerOfHash(keyHash(table, words[2 * i]!, words[2 * i + 1]!));
      owner[i] = s;
      counts[s]!++;
    }
    const parts = Array.from(counts, (c) => new Int32Array(c));
    const fill = new Int32Array(this.servers.length);
    for (let i = 0; i < n; i++) { const s = owner[i]!; parts[s]![fill[s]!++] = i; }
    return parts;
  }
}
