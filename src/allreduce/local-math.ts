// The arithmetic an allreduce does on its own buffer, kept apart from the messaging.
import { f16ToF32, f32ToF16 } from '../wire/f16.ts';

/**
 * dst[at + i] += src[from + i] for i < n. Unrolled by four: V8 does not vectorise, and the
 * unrolled loop does a quarter of the bounds checks and loop branches (32 MiB into a cold buffer:
 * 14 -> 9 ms here). `from` and `n` let the ring add straight out of its receive buffer.
 */
export function addInto(dst: Float32Array, at: number, src: Float32Array, from = 0, n = src.length - from): void {
  const whole = n - (n % 4);
  let i = 0;
  for (; i < whole; i += 4) {
    dst[at + i]! += src[from + i]!;
    dst[at + i + 1]! += src[from + i + 1]!;
    dst[at + i + 2]! += src[from + i + 2]!;
    dst[at + i + 3]! += src[from + i + 3]!;
  }
  for (; i < n; i++) dst[at + i]! += src[from + i]!;
}

/** Divides in place (the mean is taken once, by the block's owner, so every rank gets its bits). */
export function divideInPlace(a: Float32Array, by: number): void {
  for (let i = 0; i < a.length; i++) a[i]! /= by;
}

/**
 * Rounds in place to the nearest f16 value, as the wire would: the owner of a block applies it to
 * its own copy before the all-gather, so the owner and the ranks that receive the f16 copy agree
 * bit for bit.
 */
export function roundToF16InPlace(a: Float32Array): void {
  f16ToF32(f32ToF16(a), a as Float32Array<ArrayBuffer>);
}
