// Keys, one vocabulary for every role. A key is a row id below 2^48 (the table id travels beside
// it). On the wire and in the store it is a u64 in a BigUint64Array, read as little-endian
// (lo, hi) u32 word pairs so that no BigInt is made per key on a hot path; where a key must be a
// single JS value (a Set or Map key, a JSON-free record) it is a number, exact below 2^53.

/** Row ids are 48-bit: every key is below this. */
export const KEY_LIMIT = 2 ** 48;
/** The high word of every valid key is below this (2^48 / 2^32). */
export const KEY_LIMIT_HI = 0x10000;
const TWO32 = 4294967296;

/** Little-endian (lo, hi) words of a BigUint64Array, without copying. */
export function keyWords(keys: BigUint64Array): Uint32Array {
  return new Uint32Array(keys.buffer, keys.byteOffset, keys.length * 2);
}

/** The key whose words are (lo, hi), as a number (exact: keys are below 2^48). */
export function keyNumber(lo: number, hi: number): number {
  return lo + hi * TWO32;
}

/** The low word of a key held as a number. */
export function keyLo(k: number): number {
  return k % TWO32;
}

/** The high word of a key held as a number. */
export function keyHi(k: number): number {
  return Math.floor(k / TWO32);
}

/** Key i of a word view as a number. */
export function keyAt(words: Uint32Array, i: number): number {
  return words[2 * i]! + words[2 * i + 1]! * TWO32;
}

/** Keys held as numbers, as a BigUint64Array (written word by word, no BigInt per key). */
export function keysFromNumbers(keys: ArrayLike<number>): BigUint64Array {
  const out = new BigUint64Array(keys.length);
  const w = keyWords(out);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    w[2 * i] = k % TWO32;
    w[2 * i + 1] = Math.floor(k / TWO32);
  }
  return out;
}

/** Keys as numbers (each exact: keys are below 2^48). */
export function keysToNumbers(keys: BigUint64Array): Float64Array {
  const w = keyWords(keys);
  const out = new Float64Array(keys.length);
  for (let i = 0; i < keys.length; i++) out[i] = w[2 * i]! + w[2 * i + 1]! * TWO32;
  return out;
}

/** The position of the first key that is not below 2^48, or -1 when every key is valid. */
export function firstKeyOutOfRange(keys: BigUint64Array): number {
  const w = keyWords(keys);
  for (let i = 0; i < keys.length; i++) if (w[2 * i + 1]! >= KEY_LIMIT_HI) return i;
  return -1;
}

/** Why these keys are refused (one is not below 2^48), or null. */
export function keyRangeProblem(keys: BigUint64Array): string | null {
  const i = firstKeyOutOfRange(keys);
  return i < 0 ? null : `key ${keys[i]} at position ${i} is not below 2^48 (row ids are 48-bit)`;
}
