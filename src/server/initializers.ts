// Deterministic row initializers. A row's values depend only on (table seed, key, column), never
// on which server creates the row, in which order, or how the table is partitioned: a
// counter-based generator hashes (seed, key) once per row into two 32-bit words and then
// (row words, column) per value, so any replica or re-partitioning recreates the same row.
// Column c's value is also independent of the row width.
import { fmix32 } from '../keys/key-index.ts';

export type InitKind = 'zeros' | 'uniform' | 'normal' | 'constant';
export const INIT_KINDS: readonly InitKind[] = ['zeros', 'uniform', 'normal', 'constant'];

export interface InitSpec {
  init: InitKind;
  /** uniform: values in [-scale, scale]; normal: standard deviation; constant: the value. */
  scale: number;
  /** Table seed: a bigint (taken mod 2^64) or a non-negative safe integer. */
  seed: bigint | number;
}

/** Writes one row of `dim` values at out[outOffset..]. */
export type RowInitializer = (out: Float32Array, outOffset: number, dim: number, keyLo: number, keyHi: number) => void;

const GOLDEN = 0x9e3779b9; // 2^32 / phi: odd, so column * GOLDEN is distinct for every column
const TWO_PI = 2 * Math.PI;
const INV_2_32 = 2 ** -32;

/** A spec's problem as a sentence, or null. */
export function checkInitSpec(spec: InitSpec): string | null {
  if (!INIT_KINDS.includes(spec.init)) return `unknown initializer '${String(spec.init)}' (known: ${INIT_KINDS.join(', ')})`;
  if (typeof spec.scale !== 'number' || !Number.isFinite(spec.scale)) return `initializer scale ${String(spec.scale)} is not a finite number`;
  if (spec.init === 'normal' && spec.scale < 0) return `normal initializer needs a standard deviation >= 0, got ${spec.scale}`;
  if (typeof spec.seed === 'number') {
    if (!Number.isSafeInteger(spec.seed) || spec.seed < 0) return `seed ${spec.seed} is not a non-negative safe integer (use a bigint for 64-bit seeds)`;
  } else if (typeof spec.seed !== 'bigint') return `seed must be a bigint or a number, got ${typeof spec.seed}`;
  return null;
}

/** The seed as (lo, hi) 32-bit words of its value mod 2^64. */
export function seedWords(seed: bigint | number): [lo: number, hi: number] {
  const s = BigInt.asUintN(64, typeof seed === 'bigint' ? seed : BigInt(seed));
  return [Number(s & 0xffff_ffffn), Number(s >> 32n)];
}

/** murmur3_x86_32 of four u32 words (seed lo/hi, key lo/hi) with a stream constant. */
function mix4(a: number, b: number, c: number, d: number, stream: number): number {
  let h = stream;
  h = round(h, a); h = round(h, b); h = round(h, c); h = round(h, d);
  return fmix32(h ^ 16);
}

function round(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The c-th 32-bit output of the row's stream (two rounds of fmix32 keyed by both row words). */
function draw(h1: number, h2: number, c: number): number {
  return fmix32(fmix32((h1 + Math.imul(c, GOLDEN)) | 0) ^ h2);
}

/** An initializer with the spec's seed decoded once; the store calls it for every new row. */
export function makeRowInitializer(spec: InitSpec): RowInitializer {
  const bad = checkInitSpec(spec);
  if (bad) throw new Error(bad);
  const [sLo, sHi] = seedWords(spec.seed);
  const scale = spec.scale;
  switch (spec.init) {
    case 'zeros':
      return (out, off, dim) => { out.fill(0, off, off + dim); };
    case 'constant':
      return (out, off, dim) => { out.fill(scale, off, off + dim); };
    case 'uniform':
      return (out, off, dim, lo, hi) => {
        const h1 = mix4(sLo, sHi, lo >>> 0, hi >>> 0, 0x2545f491);
        const h2 = mix4(sLo, sHi, lo >>> 0, hi >>> 0, 0x6a09e667);
        // u in [0, 1): 32 random bits; 2u - 1 in [-1, 1).
        for (let c = 0; c < dim; c++) out[off + c] = scale * (draw(h1, h2, c) * (2 * INV_2_32) - 1);
      };
    case 'normal':
      return (out, off, dim, lo, hi) => {
        const h1 = mix4(sLo, sHi, lo >>> 0, hi >>> 0, 0x2545f491);
        const h2 = mix4(sLo, sHi, lo >>> 0, hi >>> 0, 0x6a09e667);
        // Box-Muller: columns 2p and 2p+1 share the pair of uniforms drawn at 2p, 2p+1.
        for (let c = 0; c < dim; c += 2) {
          const u1 = (draw(h1, h2, c) + 1) * INV_2_32; // (0, 1]: log is finite
          const u2 = draw(h1, h2, c + 1) * INV_2_32;
          const r = scale * Math.sqrt(-2 * Math.log(u1));
          const t = TWO_PI * u2;
          out[off + c] = r * Math.cos(t);
          if (c + 1 < dim) out[off + c + 1] = r * Math.sin(t);
        }
      };
  }
}

/**
 * Writes the initial row for key (keyLo, keyHi) of a table with this spec. Deterministic in
 * (spec.seed, key, column) only. Uniform: [-scale, scale]; normal: N(0, scale^2); constant: scale.
 */
export function initRow(out: Float32Array, outOffset: number, dim: number, spec: InitSpec, keyLo: number, keyHi: number): void {
  makeRowInitializer(spec)(out, outOffset, dim, keyLo, keyHi);
}
