// Helpers of the worker-step tests (worker-pipeline, worker-row-cache): a summing in-memory
// "allreduce" among concurrent WorkerSteps, and a bit-for-bit comparison of float arrays.
import * as assert from 'uvu/assert';
import type { DenseHook } from '../../src/worker/worker-step.ts';

/** A summing in-memory "allreduce" over n concurrent workers. */
export function memoryAllreduce(n: number): DenseHook {
  let parts: Float32Array[] = [], waiters: ((v: Float32Array) => void)[] = [];
  return (g) => new Promise<Float32Array>((resolve) => {
    parts.push(Float32Array.from(g));
    waiters.push(resolve);
    if (parts.length < n) return;
    const sum = new Float32Array(g.length);
    for (const p of parts) for (let i = 0; i < sum.length; i++) sum[i] += p[i];
    const w = waiters;
    parts = []; waiters = [];
    for (const f of w) f(Float32Array.from(sum));
  });
}

/** Fails naming the first element whose bits differ. */
export function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.unreachable(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
}
