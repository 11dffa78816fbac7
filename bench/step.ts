// One DLRM worker step end to end, at the issue's shapes (26 tables, dim 64, bottom 13-512-256-64,
// top 512-256-1), against a real scheduler and server on loopback: the time of each phase.
import { fileURLToPath } from 'node:url';
import { acquireGpu } from '../src/gpu/device.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, DLRM_PRESETS } from '../src/model/dlrm.ts';
import { WorkerStep, psTableSpecs, type WorkerBatch, type StepPhases } from '../src/worker/worker-step.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { PsServer } from '../src/server/ps-server.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { generateSecret } from '../src/transport/auth.ts';
import { skewedIds, xorshift } from './ids.ts';

/** Skewed ids (as click logs have: a few hot rows, a long tail), the same as bench/kernels.ts. */
function batch(B: number, tables: number, rows: number, seed: number): WorkerBatch {
  const rnd = xorshift(seed);
  const ids = () => skewedIds(B, rows, rnd);
  return {
    B,
    inputs: { dense_x: Float32Array.from({ length: B * 13 }, () => Math.log1p(rnd() * 100)), labels: Float32Array.from({ length: B }, () => (rnd() < 0.25 ? 1 : 0)) },
    tables: Array.from({ length: tables }, () => ({ ids: ids() })),
  };
}

export async function runStepBench(args: { quick?: boolean; log?: (s: string) => void }): Promise<{ batch: number; steps: number } & Record<string, number>> {
  const B = args.quick ? 512 : 2048, steps = args.quick ? 3 : 5;
  const secret = new TextEncoder().encode(generateSecret());
  const sched = await Scheduler.start({ secret });
  const server = await PsServer.start({ secret, schedulerUrl: sched.url, nodeId: 'server-0' });
  const client = await PSClient.connect({ secret, schedulerUrl: sched.url, nodeId: 'worker-0' });
  const gpu = await acquireGpu({ label: 'bench-step' });
  try {
    await client.waitForView((v) => v.servers.length === 1 && v.workers.length === 1);
    const cfg = DLRM_PRESETS.gpu!;
    const spec = dlrmSpec(cfg, { optimizer: 'sgd', hyper: { lr: 0.01 } });
    const { specs, tableIds } = psTableSpecs(spec, 1, 3n);
    await client.declareTables(specs);
    const runner = await ModelRunner.create(gpu, spec, { seed: 1 });
    const step = new WorkerStep({ client, runner, tableIds, globalBatch: B, dense: { mode: 'local', optimizer: { kind: 'sgd', lr: 0.01 } } });
    const all: StepPhases[] = [];
    for (let i = 0; i <= steps; i++) {
      const r = await step.run(batch(B, cfg.numTables, cfg.rowsPerTable, i + 1));
      if (i > 0) all.push(r.ms); // the first step compiles and allocates
      args.log?.(`step ${i}: loss ${r.loss.toFixed(4)} ${Object.entries(r.ms).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(' ')} ms`);
    }
    const med = (k: keyof StepPhases) => { const v = all.map((p) => p[k]).sort((a, b) => a - b); return +v[Math.floor(v.length / 2)]!.toFixed(2); };
    runner.destroy();
    return {
      batch: B, steps, prepMs: med('prep'), pullMs: med('pull'), uploadMs: med('upload'), computeMs: med('compute'),
      downloadMs: med('download'), pushMs: med('push'), denseMs: med('dense'),
    };
  } finally {
    await client.close();
    await server.stop();
    await sched.stop();
    await gpu.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await runStepBench({ quick: process.argv.includes('--quick'), log: (s) => console.log(s) });
  console.log(JSON.stringify(r));
  process.exit(0);
}
