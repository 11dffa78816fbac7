// bfloat16 <-> binary32 for row values on the wire (`--wire-rows bf16`). A bf16 is the top half
// of an f32: the same sign and 8-bit exponent (f32's whole range, subnormals included, so no
// gradient underflows as below fp16's 6.1e-5 or overflows above its 65504) and 7 mantissa bits.
// f32 -> bf16 rounds to nearest, ties to even, on the bit pattern (add 0x7fff plus the kept
// half's lowest bit, keep the high 16): a round trip's relative error is at most 2^-8 (3.9e-3)
// for normal values (|x| >= 2^-126), absolute at most 2^-134 below. NaN stays NaN (quieted, sign
// kept: truncating a NaN whose payload sits in the low half would make it Inf), infinities stay,
// and values from the largest bf16 (3.3895e38) plus half an ulp on become Inf, as IEEE rounding
// says. bf16 -> f32 is exact: a 16-bit shift. The array forms read and write through Uint32Array
// views of the Float32Array's own buffer: no per-value allocation, no float arithmetic; 1.1 ms
// per 2^20 values against 1.7 ms for the scalar form in a loop and 8.4 ms for fp16's encoder
// (`npm run bench -- rowformats`, load 10-11).

/** Relative error of one f32 -> bf16 -> f32 round trip for normal values. */
export const BF16_RELATIVE_ERROR = 2 ** -8;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 of an f32's bit pattern `b` (a uint32). */
const roundBits = (b: number): number =>
  ((b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16);

export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  return roundBits(u32[0]!);
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

function checkRoom(what: string, have: number, need: number): void {
  if (have < need) throw new RangeError(`${what}: destination holds ${have} values, the source ${need}`);
}

/** Each value of `src` rounded to bf16 bits, into `dst` (same length or longer). */
export function f32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkRoom('f32ToBf16', dst.length, src.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = roundBits(bits[i]!);
  return dst;
}

/** bf16 bits widened to f32 (exact), into `dst` (same length or longer). */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkRoom('bf16ToF32', dst.length, src.length);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return dst;
}

/** Rounds every value of `a` in place to the nearest bf16, as the wire does (the f32 keeps the bf16's bits). */
export function roundToBf16InPlace(a: Float32Array): Float32Array {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < bits.length; i++) bits[i] = roundBits(bits[i]!) << 16;
  return a;
}
