// Serial vs pipelined worker step (docs/training.md, "Pipelined step"), one worker against a real
// scheduler and server on loopback, at a shape where the GPU's time and the data path's are of
// the same order: the CPU preset (26 tables, dim 16) at a small batch on lavapipe. Each step
// reads (generates) its batch, so the pipelined loop overlaps that read, the prep and, under
// SSP(1), the pull with the GPU work of the step before. Prints the median step wall time of both
// loops (alternated 3 times), the serial phases split into GPU and data path, their sum and max.
// lavapipe computes on the CPU cores: on a small machine `LP_NUM_THREADS=1` leaves a core to the
// data path (or the two only share the cores, and nothing can overlap).
// `npm run bench -- pipeline [--json] [--quick]`, options `--batch N`, `--steps N`.
import { fileURLToPath } from 'node:url';
import { acquireGpu } from '../src/gpu/device.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, DLRM_PRESETS } from '../src/model/dlrm.ts';
import type { ConsistencyName } from '../src/model/model-spec.ts';
import { WorkerStep, psTableSpecs, type WorkerBatch, type StepPhases, type PreparedBatch } from '../src/worker/worker-step.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { PsServer } from '../src/server/ps-server.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { generateSecret } from '../src/transport/auth.ts';

/** Zipf-like ids and random dense features: the "read" of a step. */
function readBatch(B: number, tables: number, rows: number, seed: number): WorkerBatch {
  let s = seed >>> 0 || 1;
  const rnd = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  return {
    B,
    inputs: { dense_x: Float32Array.from({ length: B * 13 }, () => Math.log1p(rnd() * 100)), labels: Float32Array.from({ length: B }, () => (rnd() < 0.25 ? 1 : 0)) },
    tables: Array.from({ length: tables }, () => ({ ids: Uint32Array.from({ length: B }, () => Math.min(rows - 1, Math.floor(Math.pow(rnd(), 3) * rows))) })),
  };
}

/** Per measured step: wall time (end to end of consecutive steps, so a pipelined step's overlap counts) and phases. */
interface LoopResult { stepMs: number[]; phases: StepPhases[]; readMs: number[] }

const median = (v: number[]) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN; };

export async function runPipelineBench(args: { quick?: boolean; batch?: number; steps?: number; log?: (s: string) => void }) {
  const B = args.batch ?? 512, steps = args.steps ?? (args.quick ? 8 : 30);
  const log = args.log ?? (() => {});
  const gpu = await acquireGpu({ label: 'bench-pipeline' });
  const cfg = DLRM_PRESETS.small!;
  const loop = async (consistency: ConsistencyName, pipeline: boolean): Promise<LoopResult> => {
    const secret = new TextEncoder().encode(generateSecret());
    const sched = await Scheduler.start({ secret });
    const server = await PsServer.start({ secret, schedulerUrl: sched.url, nodeId: 'server-0' });
    const client = await PSClient.connect({ secret, schedulerUrl: sched.url, nodeId: 'worker-0' });
    try {
      await client.waitForView((v) => v.servers.length === 1 && v.workers.length === 1);
      const spec = dlrmSpec(cfg, { optimizer: 'adagrad', hyper: { lr: 0.01 }, consistency, staleness: consistency === 'ssp' ? 1 : 0 });
      const { specs, tableIds } = psTableSpecs(spec, 1, 3n);
      await client.declareTables(specs);
      const runner = await ModelRunner.create(gpu, spec, { seed: 1 });
      const st = new WorkerStep({ client, runner, tableIds, globalBatch: B, pipeline, dense: { mode: 'local', optimizer: { kind: 'adagrad', lr: 0.01 } } });
      const out: LoopResult = { stepMs: [], phases: [], readMs: [] };
      const read = (i: number) => { const t0 = performance.now(); const b = readBatch(B, cfg.numTables, cfg.rowsPerTable, i + 1); if (i > 1) out.readMs.push(performance.now() - t0); return b; };
      let ahead: PreparedBatch | null = null, last = 0;
      for (let i = 0; i <= steps; i++) {
        const cur: PreparedBatch = ahead ?? st.prepare(read(i));
        ahead = null;
        const r = await st.run(cur, pipeline && i < steps ? (clock) => { ahead = st.prepare(read(i + 1), clock); } : undefined);
        const end = performance.now();
        if (i > 1) { out.stepMs.push(end - last); out.phases.push(r.ms); } // step 0 compiles and allocates
        last = end;
      }
      runner.destroy();
      return out;
    } finally {
      await client.close();
      await server.stop();
      await sched.stop();
    }
  };
  const r2 = (x: number) => +x.toFixed(2);
  const rows: Record<string, object> = {};
  try {
    for (const consistency of ['bsp', 'ssp'] as ConsistencyName[]) {
      // Alternate the two loops (the machine is shared: its load drifts) and take medians.
      const runs = { serial: [] as LoopResult[], piped: [] as LoopResult[] };
      for (let rep = 0; rep < (args.quick ? 1 : 3); rep++) {
        runs.serial.push(await loop(consistency, false));
        runs.piped.push(await loop(consistency, true));
      }
      const summary = (rs: LoopResult[]) => {
        const phases = {} as StepPhases;
        for (const k of Object.keys(rs[0]!.phases[0]!) as (keyof StepPhases)[]) phases[k] = median(rs.flatMap((r) => r.phases.map((p) => p[k])));
        return { stepMs: median(rs.flatMap((r) => r.stepMs)), phases, read: median(rs.flatMap((r) => r.readMs)) };
      };
      const serial = summary(runs.serial), piped = summary(runs.piped);
      const p = serial.phases, read = serial.read;
      const gpuMs = p.upload + p.compute + p.download;
      // Everything else of a serial step: read, prep, pull, push, dense, clock (and the loop's own time).
      const dataMs = serial.stepMs - gpuMs;
      const row = {
        serialStepMs: r2(serial.stepMs), pipelinedStepMs: r2(piped.stepMs), gpuMs: r2(gpuMs), dataPathMs: r2(dataMs),
        sumMs: r2(gpuMs + dataMs), maxMs: r2(Math.max(gpuMs, dataMs)), speedup: r2(serial.stepMs / piped.stepMs),
        serialPhases: Object.fromEntries(Object.entries({ read, ...p }).map(([k, v]) => [k, r2(v)])),
        pipelinedPhases: Object.fromEntries(Object.entries(piped.phases).map(([k, v]) => [k, r2(v)])),
      };
      rows[consistency === 'ssp' ? 'ssp1' : 'bsp'] = row;
      log(`${consistency === 'ssp' ? 'ssp:1' : 'bsp  '}  serial ${row.serialStepMs} ms/step, pipelined ${row.pipelinedStepMs} ms/step (x${row.speedup}); ` +
        `GPU ${row.gpuMs} + data path ${row.dataPathMs}: sum ${row.sumMs}, max ${row.maxMs}`);
      log(`       serial phases ${JSON.stringify(row.serialPhases)}`);
    }
  } finally {
    await gpu.destroy();
  }
  return { batch: B, steps, preset: 'small', adapter: gpu.adapterName, ...rows };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const num = (f: string) => { const i = argv.indexOf(f); return i >= 0 ? Number(argv[i + 1]) : undefined; };
  const json = argv.includes('--json');
  const r = await runPipelineBench({ quick: argv.includes('--quick'), batch: num('--batch'), steps: num('--steps'), log: (s) => (json ? process.stderr : process.stdout).write(s + '\n') });
  if (json) console.log(JSON.stringify(r));
  process.exit(0);
}
