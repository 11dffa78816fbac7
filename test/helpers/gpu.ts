// Shared GPU test pattern: one device per test file (acquired lazily, shared by all suites),
// destroyed after the last suite, then a forced exit once uvu has printed its summary (uvu only
// sets process.exitCode, and Dawn keeps Node's event loop alive).
//
//   import { gpuSuite, finishGpuTests } from './helpers/gpu.ts';
//   const s = gpuSuite('linear_fwd');
//   s('matches the reference', async ({ gpu, kernels, dispatcher }) => { ... });
//   s.run();
//   finishGpuTests(); // last line of the file
import { suite, type Test } from 'uvu';
import * as assert from 'uvu/assert';
import { acquireGpu, type Gpu } from '../../src/gpu/device.ts';
import { KernelRegistry } from '../../src/gpu/kernel-registry.ts';
import { Dispatcher, type BufferArg, type RecordOptions } from '../../src/gpu/dispatch.ts';
import { createBufferFrom, fillNaN, readBuffer } from '../../src/gpu/buffers.ts';
import { compareClose, rng, testSeed } from './reference.ts';

export interface GpuContext {
  gpu: Gpu;
  kernels: KernelRegistry;
  dispatcher: Dispatcher;
  /** Seeded random source for this suite; the seed is printed when a test fails. */
  rand: () => number;
  seed: number;
}

let shared: Promise<{ gpu: Gpu; kernels: KernelRegistry; dispatcher: Dispatcher }> | null = null;

/** The file's device (acquired on first use). A missing adapter fails with the fix in the message. */
export function testGpu(): Promise<{ gpu: Gpu; kernels: KernelRegistry; dispatcher: Dispatcher }> {
  shared ??= acquireGpu({ label: 'test' }).then((gpu) => {
    const kernels = new KernelRegistry(gpu);
    return { gpu, kernels, dispatcher: new Dispatcher(gpu, kernels) };
  });
  return shared;
}

/** A uvu suite whose context carries the shared device, registry, dispatcher and a seeded RNG. */
export function gpuSuite(name: string): Test<GpuContext> {
  const s = suite<GpuContext>(name, {} as GpuContext);
  let acquireError: unknown = null;
  s.before(async (ctx) => {
    ctx.seed = testSeed();
    ctx.rand = rng(ctx.seed);
    try {
      const { gpu, kernels, dispatcher } = await testGpu();
      ctx.gpu = gpu;
      ctx.kernels = kernels;
      ctx.dispatcher = dispatcher;
    } catch (e) {
      acquireError = e; // reported by every test below, with the fix in the message
    }
  });
  s.before.each(() => {
    if (acquireError) throw acquireError;
  });
  s.after.each((ctx) => {
    // Re-seed per test so each test is replayable on its own with TEST_SEED.
    ctx.rand = rng(ctx.seed);
  });
  return s;
}

/** Registers the teardown: destroy the device after the last suite, then exit after uvu's summary. */
export function finishGpuTests(): void {
  const teardown = suite('gpu teardown');
  teardown.after(async () => {
    if (shared) {
      try {
        const { gpu } = await shared;
        await gpu.destroy();
      } catch {
        // acquisition failed: the tests already reported it
      }
      shared = null;
    }
    // uvu prints the summary and sets exitCode synchronously after this hook returns.
    setTimeout(() => process.exit(process.exitCode ?? 0), 200);
  });
  teardown.run();
}

// ---- small helpers shared by kernel tests ----

/** Storage buffer holding `data` (f32 or u32). */
export function upload(gpu: Gpu, data: Float32Array | Uint32Array, label = 'in'): GPUBuffer {
  return createBufferFrom(gpu, data, label);
}

/** A NaN-poisoned output buffer of `count` floats. */
export function output(gpu: Gpu, count: number, label = 'out'): GPUBuffer {
  const size = Math.max(16, Math.ceil((count * 4) / 16) * 16); // kernels may bind it as array<vec4f>
  const buf = gpu.device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  fillNaN(gpu, buf, size);
  return buf;
}

export async function download(gpu: Gpu, buf: GPUBuffer, count: number): Promise<Float32Array> {
  if (count === 0) return new Float32Array(0);
  return new Float32Array(await readBuffer(gpu, buf, count * 4));
}

/** Runs one kernel and fails the test on any GPU validation error it raised. */
export async function runKernel(ctx: GpuContext, name: string, params: Record<string, number | boolean>, buffers: BufferArg[], opts?: RecordOptions): Promise<void> {
  ctx.gpu.device.pushErrorScope('validation');
  await ctx.dispatcher.run(name, params, buffers, opts);
  const err = await ctx.gpu.device.popErrorScope();
  if (err) throw new Error(`${name}: GPU validation error: ${err.message}`);
}

/** Asserts closeness; the message carries the seed to replay the case. */
export function expectClose(ctx: GpuContext, got: ArrayLike<number>, want: ArrayLike<number>, tol: number | ((i: number) => number), label: string): number {
  const r = compareClose(got, want, tol, label);
  assert.ok(r.ok, `${r.message} (replay with TEST_SEED=${ctx.seed})`);
  return r.maxErr;
}
