// The arithmetic an allreduce does on its own buffer, kept apart from the messaging.
import { f16ToF32, f32ToF16 } from '../wire/f16.ts';

/** dst[at + i] += src[i]. */
export function addInto(dst: Float32Array, at: number, src: Float32Array): void {
  const n = src.length;
  for (let i = 0; i < n; i++) dst[at + i]! += src[i]!;
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
