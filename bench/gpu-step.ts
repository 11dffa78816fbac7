// The GPU part of one DLRM worker step at the gpu preset (26 tables x dim 64, bottom 13-512-256-64,
// top 512-256-1), through ModelRunner only (no servers): upload, forward, backward, readback and
// the dense update of the hybrid path (applyDenseUpdate of the step's dense gradient, as after an
// allreduce). Counted by the wrapper around the real device (src/gpu/counting-device.ts): submits,
// CPU waits, dispatches, writeBuffer calls and bytes per step, so the structure is visible on any
// machine, with or without a GPU.
//
// Wall time on a shared 2-core VM mostly measures the other tenants; on a software adapter
// (lavapipe) the CPU time of the process's threads other than the main one (which only records
// and busy-polls) is the kernel work itself, and is reported as deviceCpuMs.
//
// Only ModelRunner.create / step / applyDenseUpdate are used, so this file also runs against an
// older checkout of the runner (copy it, bench/ids.ts and src/gpu/counting-device.ts there) for a
// before/after comparison with the same program.
//   node --import tsx bench/gpu-step.ts [--quick] [--steps=N]
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { acquireGpu } from '../src/gpu/device.ts';
import { countingGpu, type GpuCounts } from '../src/gpu/counting-device.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, DLRM_PRESETS } from '../src/model/dlrm.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { skewedIds, uniquePerSample, xorshift } from './ids.ts';
import { cpuMsOfStat } from './proc-cpu.ts';

export interface GpuStepResult {
  adapter: string;
  batch: number;
  steps: number;
  /** Unique ids per sample, mean over the tables and steps. */
  uniquePerSample: number;
  /** Median wall ms of step + applyDenseUpdate. */
  stepMs: number;
  /** Median CPU ms of the non-main threads over the same interval (software adapters only). */
  deviceCpuMs?: number;
  /** Per step, from the counting device. */
  submits: number;
  cpuWaits: number;
  dispatches: number;
  writeBuffers: number;
  bytesUp: number;
  bytesDown: number;
  readbackCopies: number;
  bindGroups: number;
}

/** CPU seconds (user + system) of this process's threads other than the main thread. */
export function workerThreadsCpu(): number {
  let s = 0;
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return 0; // no procfs: not reported
  }
  for (const t of tasks) {
    if (t === String(process.pid)) continue;
    const ms = cpuMsOfStat(`/proc/self/task/${t}/stat`);
    if (!Number.isNaN(ms)) s += ms / 1000; // (NaN: the thread ended)
  }
  return s;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

export async function runGpuStepBench(args: { quick?: boolean; steps?: number; log?: (s: string) => void } = {}): Promise<GpuStepResult> {
  const B = args.quick ? 512 : 2048;
  const steps = args.steps ?? 3;
  const cfg = DLRM_PRESETS.gpu!;
  const gpu = await acquireGpu({ label: 'bench-gpu-step' });
  const counted = countingGpu(gpu);
  const software = /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName);
  try {
    const runner = await ModelRunner.create(counted.gpu, dlrmSpec(cfg, { optimizer: 'sgd', hyper: { lr: 0.01 } }), { seed: 1 });
    const sgd = { kind: 'sgd' as const, lr: 0.01 };
    let uniq = 0;
    const batches = Array.from({ length: steps + 1 }, (_, i) => {
      const rnd = xorshift(1000 + i);
      const dense_x = Float32Array.from({ length: B * cfg.numDense }, () => Math.log1p(rnd() * 100));
      const labels = Float32Array.from({ length: B }, () => (rnd() < 0.25 ? 1 : 0));
      const tables = Array.from({ length: cfg.numTables }, () => {
        const ids = skewedIds(B, cfg.rowsPerTable, rnd);
        if (i > 0) uniq += uniquePerSample(ids) / (steps * cfg.numTables);
        const prep = prepareTable({ ids }, B);
        return { prep, rows: Float32Array.from({ length: prep.unique.length * cfg.dim }, () => (rnd() - 0.5) * 0.1) };
      });
      return { B, inputs: { dense_x, labels }, tables };
    });

    const wall: number[] = [], cpu: number[] = [];
    let total: GpuCounts | null = null;
    for (let i = 0; i <= steps; i++) {
      if (i === 1) counted.reset(); // step 0 compiles and allocates
      const c0 = workerThreadsCpu();
      const t0 = performance.now();
      const r = await runner.step(batches[i]!);
      await runner.applyDenseUpdate(r.denseGrads, sgd);
      (r as { release?: () => void }).release?.();
      const ms = performance.now() - t0;
      const cpuMs = (workerThreadsCpu() - c0) * 1000;
      if (i > 0) { wall.push(ms); cpu.push(cpuMs); }
      args.log?.(`gpu step ${i}: ${ms.toFixed(1)} ms wall${software ? `, ${cpuMs.toFixed(0)} ms worker-thread CPU` : ''}, loss ${r.loss.toFixed(4)}`);
    }
    total = { ...counted.counts };
    runner.destroy();
    const per = (k: keyof GpuCounts) => Math.round((total![k] / steps) * 100) / 100;
    return {
      adapter: gpu.adapterName, batch: B, steps, uniquePerSample: Math.round(uniq * 1000) / 1000,
      stepMs: Math.round(median(wall) * 100) / 100,
      ...(software ? { deviceCpuMs: Math.round(median(cpu)) } : {}),
      submits: per('submits'), cpuWaits: per('cpuWaits'), dispatches: per('dispatches'), writeBuffers: per('writeBuffers'),
      bytesUp: per('bytesUp'), bytesDown: per('bytesDown'), readbackCopies: per('readbackCopies'), bindGroups: per('bindGroups'),
    };
  } finally {
    await gpu.destroy();
  }
}

// Run as a program only under its own name: bench/kernels.ts imports this file, and in a bundle of
// kernels.ts (scripts/gpu-box/bundle.mjs) import.meta.url is the bundle's, i.e. argv[1].
if (process.argv[1] && /gpu-step\.[cm]?[jt]s$/.test(process.argv[1]) && fileURLToPath(import.meta.url) === process.argv[1]) {
  const stepsArg = process.argv.find((a) => a.startsWith('--steps='));
  const r = await runGpuStepBench({ quick: process.argv.includes('--quick'), steps: stepsArg ? Number(stepsArg.slice(8)) : undefined, log: (s) => process.stderr.write(s + '\n') });
  console.log(JSON.stringify(r));
  setTimeout(() => process.exit(0), 100);
}
