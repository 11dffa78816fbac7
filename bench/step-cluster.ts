// `npm run bench -- step`: the worker step's data path against the wire, at the gpu preset (batch
// 2048, 26 tables x 100k rows x dim 64) with the planted generator's Zipf ids, the scheduler, the
// servers and the workers each a process of their own (as `hybridps launch` runs them).
//
// Per configuration (S servers, W workers, the servers' optimizer, BSP or SSP:2), with WorkerStep
// pipelined as training runs it (--no-pipeline: serial):
// - dataPathMs: a step with the GPU work left out (bench/data-path-runner.ts: right-shaped
//   constant gradients, still pushed, the dense gradient still allreduced when W = 2);
// - wireFloorMs: one raw loopback TCP stream (bench/raw-tcp-floor.ts: a server process, the
//   client in worker 0's process) carrying the same pull and push bytes per step, timed in
//   blocks between blocks of the data-path steps (so both see the same load), in the same run;
// - ratio = dataPathMs / wireFloorMs; ceilingSamplesPerSec = batch / dataPathMs;
// - stepMs: the real step with the GPU work (lavapipe on a machine without a GPU);
// - the phases of both, the rows touched and pulled, the row cache's hit rate, evictions and bytes saved.
// With --cache-rows N (default 16384 in a full run, 0 with --quick), every SSP configuration runs
// twice in the same run: without the worker-side row cache and with it (`<name>+cache`). AdaGrad
// tables are cached with their optimizer state (src/worker/row-cache.ts); --cache-policy
// ADMIT:REFRESH[,...] (ADMIT all or second-touch, REFRESH the clocks a held state serves row-only
// refreshes) runs one `+cache(ADMIT:REFRESH)` row per policy instead of the default one.
// With GPU steps (--gpu-steps N > 0): gpuMs (upload + compute + download of the real step) and
// exposedDataPathMs (stepMs - gpuMs: the data path the pipeline did not hide), medians over steps.
// With --hot-rows N[,N...] every BSP configuration runs once without hot rows and once per budget
// N with them (`<name>+hotN`: the N most frequent rows per table held on the worker, chosen from
// rank 0's first batches, src/worker/hot-rows.ts), in the same run; hotShare is the hot rows'
// share of the rows a step touches.
// Every child process is stopped at the end, on an error and on Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg, totalmem, freemem } from 'node:os';
import { LocalCluster } from '../src/launch/local-cluster.ts';
import { ROLE_V8_FLAGS } from '../src/util/package-files.ts'; // as training's workers run
import { printTable } from './table.ts';
import { DEFAULT_ROW_CACHE } from '../src/worker/worker-step.ts';
import {
  ALL_CONFIGS, DEFAULT_CONFIGS, BenchRefusal, FULL_SIZES, QUICK_SIZES, TABLES, DIM, pickConfigs, memoryNeed, memoryRefusal,
  type StepConfig, type RunSizes,
} from './step-configs.ts';
export { BenchRefusal };
import type { WorkerProcConfig, WorkerProcMessage, WorkerProcResult, StepSample, PhaseResult } from './step-worker-proc.ts';

export interface StepBenchArgs {
  json?: boolean;
  quick?: boolean;
  /** Every configuration (16). */
  all?: boolean;
  /** Comma-separated configuration names (see step-configs.ts). */
  config?: string;
  rowsPerTable?: number;
  batch?: number;
  steps?: number;
  gpuSteps?: number;
  /** WorkerStep's pipelined mode (default on, as in training; --no-pipeline: serial). */
  pipeline?: boolean;
  /** Row cache rows per table for the `+cache` runs of SSP configurations (0: none). */
  cacheRows?: number;
  /** Hot-row budgets per table for the `+hotN` runs of BSP configurations (none: no such runs). */
  hotRows?: number[];
  /** Stateful tables' cache policies, `ADMIT:REFRESH[,...]` (default: DEFAULT_ROW_CACHE's, one `+cache` row). */
  cachePolicy?: string;
}

interface CachePolicy { admit: 'all' | 'second-touch'; stateRefresh: number; label: string }

/** The `+cache` runs' policies: --cache-policy, or the default one (labelled plainly `+cache`). */
function cachePolicies(arg: string | undefined): CachePolicy[] {
  if (arg === undefined) return [{ admit: DEFAULT_ROW_CACHE.admit, stateRefresh: DEFAULT_ROW_CACHE.stateRefresh, label: '+cache' }];
  return arg.split(',').map((x) => {
    const m = /^(all|second-touch):(\d+)$/.exec(x.trim());
    if (!m) throw new BenchRefusal(`--cache-policy ${x}: expected ADMIT:REFRESH with ADMIT all or second-touch and REFRESH clocks >= 0, e.g. second-touch:16`);
    return { admit: m[1] as CachePolicy['admit'], stateRefresh: Number(m[2]), label: `+cache(${m[1]}:${m[2]})` };
  });
}

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
/** Dawn's note at device creation on every adapter: not news. */
const DAWN_NOISE = /artificially reduced from/;
const QUICK_CONFIG = 's2-w1-adagrad-bsp';
/** Adapters that run on the CPU (their step times are not GPU times). */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;
const PHASES = ['prep', 'pull', 'upload', 'compute', 'download', 'push', 'dense', 'clock'] as const;
type Phases = Record<(typeof PHASES)[number], number>;

/** The q-quantile (nearest rank) of v; NaN when empty. */
const quantile = (v: number[], q: number) => { if (!v.length) return NaN; const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]!; };
const median = (v: number[]) => quantile(v, 0.5);
const r2 = (x: number) => +x.toFixed(2);
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);

/** Every child this run started that is still alive, so a signal or an error can stop them. */
const children = new Set<ChildProcess>();
function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}
function killAll(): void { for (const p of children) p.kill('SIGKILL'); }

function spawnFloorServer(): Promise<{ port: number; proc: ChildProcess }> {
  const proc = track(spawn(process.execPath, [...nodeArgs, '--import', 'tsx', here('./raw-tcp-floor.ts'), 'server'], { stdio: ['pipe', 'pipe', 'inherit'] }));
  return new Promise((resolve, reject) => {
    proc.once('exit', (c) => reject(new Error(`raw TCP floor server exited (${c})`)));
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = /^HYBRIDPS_READY (.*)$/.exec(l);
      if (m) resolve({ port: JSON.parse(m[1]!).port, proc });
    });
  });
}

/** Starts one worker process; resolves with its result, rejects on its error or early exit. */
function runWorker(cfg: WorkerProcConfig, secret: string, log: (s: string) => void, procs: ChildProcess[]): Promise<WorkerProcResult> {
  const env = { ...process.env, HYBRIDPS_SECRET: secret, BENCH_STEP_WORKER: JSON.stringify(cfg), HYBRIDPS_LOG: process.env.HYBRIDPS_LOG ?? 'warn' };
  const proc = track(spawn(process.execPath, [...ROLE_V8_FLAGS, ...nodeArgs, '--import', 'tsx', here('./step-worker-proc.ts')], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' }));
  procs.push(proc);
  for (const s of [proc.stdout!, proc.stderr!]) createInterface({ input: s }).on('line', (l) => { if (!DAWN_NOISE.test(l)) log(`[${cfg.nodeId}] ${l}`); });
  // Settles when the process has exited: with its result, or with its error.
  return new Promise((resolve, reject) => {
    let result: WorkerProcResult | null = null, error: string | null = null;
    proc.on('message', (raw: unknown) => {
      const m = raw as WorkerProcMessage;
      if (m?.kind === 'result' && typeof m.result === 'object') result = m.result;
      else if (m?.kind === 'error') { error = m.message; proc.kill('SIGKILL'); }
      else { error = 'an unexpected message'; proc.kill('SIGKILL'); }
    });
    proc.once('exit', (code, sig) => {
      if (result && code === 0) resolve(result);
      else reject(new Error(`${cfg.nodeId} failed (exit ${code ?? sig}): ${error ?? 'no result'}`));
    });
  });
}

function phaseMedians(steps: StepSample[]): Phases {
  return Object.fromEntries(PHASES.map((k) => [k, r2(median(steps.map((s) => s[k])))])) as Phases;
}

async function runConfig(c: StepConfig, sizes: RunSizes, pipeline: boolean, cacheRows: number, policy: CachePolicy, hotRows: number, floorPort: number, log: (s: string) => void): Promise<Record<string, unknown>> {
  // The roles' warnings and errors and the launcher's own lines (a role that exited), except
  // while the cluster stops (members leaving is not news then).
  let stopping = false;
  const cluster = new LocalCluster({ servers: c.servers, heartbeatMs: 2000, nodeArgs, log: (l) => { if (!stopping && /ERROR|WARN|\[launch\]/.test(l)) log(l); } });
  const t0 = performance.now();
  let results: WorkerProcResult[];
  const workers: ChildProcess[] = [];
  try {
    await cluster.start();
    const base = { schedulerUrl: cluster.schedulerUrl, servers: c.servers, workers: c.workers, optimizer: c.optimizer, consistency: c.consistency, sizes, dataSeed: 7, floorPort, pipeline, cacheRows, cacheAdmit: policy.admit, cacheStateRefresh: policy.stateRefresh, hotRows };
    const runs = Array.from({ length: c.workers }, (_, i) => runWorker({ ...base, nodeId: `worker-${i}` }, cluster.secret, log, workers));
    // One worker failing leaves the others waiting at a barrier: stop them all on the first error.
    results = await Promise.all(runs.map((p) => p.catch((e) => { for (const w of workers) w.kill('SIGKILL'); throw e; })));
  } finally {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL'); // they exit by themselves once done
    stopping = true;
    await cluster.stop();
  }
  const wallSec = (performance.now() - t0) / 1000;

  const pooled = (f: (r: WorkerProcResult) => PhaseResult | null) => results.flatMap((r) => f(r)?.steps ?? []);
  const avg = (f: (p: PhaseResult) => number) => mean(results.map((r) => f(r.dataPath)));
  const dataSteps = pooled((r) => r.dataPath), gpuSteps = pooled((r) => r.gpu);
  const dataPathMs = median(dataSteps.map((s) => s.total));
  const rowsPulled = avg((p) => p.rowsPulled), rowsTouched = avg((p) => p.rowsTouched), rowsPushed = avg((p) => p.rowsPushed);
  const pullBytes = avg((p) => p.pullBytes), pushBytes = avg((p) => p.pushBytes);
  const caches = results.map((r) => r.dataPath.cache).filter((x) => x !== null);
  const cacheSum = (f: (x: NonNullable<PhaseResult['cache']>) => number) => mean(caches.map(f));
  const hits = cacheSum((x) => x.hits), lookups = hits + cacheSum((x) => x.misses);
  const rowsHot = avg((p) => p.rowsHot);
  const floorOwner = results.find((r) => r.floor)!, floor = floorOwner.floor!;
  const stepMs = gpuSteps.length ? median(gpuSteps.map((s) => s.total)) : NaN;
  // The GPU's share of a real step (its uploads, kernels and readbacks), and what is left of it.
  const gpuMs = gpuSteps.length ? median(gpuSteps.map((s) => s.upload + s.compute + s.download)) : NaN;
  const exposedMs = gpuSteps.length ? median(gpuSteps.map((s) => s.total - (s.upload + s.compute + s.download))) : NaN;
  const need = memoryNeed([c], sizes.rowsPerTable);
  return {
    name: cacheRows > 0 ? `${c.name}${policy.label}` : hotRows > 0 ? `${c.name}+hot${hotRows}` : c.name, servers: c.servers, cacheRows, workers: c.workers, optimizer: c.optimizer,
    cachePolicy: cacheRows > 0 && c.optimizer !== 'sgd' ? { admit: policy.admit, stateRefresh: policy.stateRefresh } : null,
    hotRows, hotRowsHeld: Math.max(...results.map((r) => r.hotRows)), hotShare: rowsTouched > 0 ? +(rowsHot / rowsTouched).toFixed(3) : 0,
    viewChanges: Math.max(...results.map((r) => r.viewChanges)),
    consistency: c.consistency.kind === 'ssp' ? `ssp:${c.consistency.staleness}` : 'bsp',
    batch: sizes.batch, rowsPerTable: sizes.rowsPerTable,
    phases: gpuSteps.length ? phaseMedians(gpuSteps) : null,
    dataPathPhases: phaseMedians(dataSteps),
    dataPathMs: r2(dataPathMs),
    dataPathSpreadMs: { p10: r2(quantile(dataSteps.map((s) => s.total), 0.1)), p90: r2(quantile(dataSteps.map((s) => s.total), 0.9)) },
    standInMs: r2(median(dataSteps.map((s) => s.standIn))),
    workerCpuMs: r2(median(dataSteps.map((s) => s.cpu))),
    allreduceMs: r2(median(dataSteps.map((s) => s.allreduce))),
    serverApplyMs: r2(results.find((r) => r.dataPath.server)?.dataPath.server?.applyMs ?? NaN),
    ceilingSamplesPerSec: Math.round(sizes.batch / (dataPathMs / 1000)),
    clusterCeilingSamplesPerSec: Math.round((c.workers * sizes.batch) / (dataPathMs / 1000)),
    wireFloorMs: r2(floor.ms), wireFloor: { pullMs: r2(floor.pullMs), pushMs: r2(floor.pushMs), pullBytes: Math.round(floorOwner.dataPath.pullBytes), pushBytes: Math.round(floorOwner.dataPath.pushBytes) },
    pullBytes: Math.round(pullBytes), pushBytes: Math.round(pushBytes),
    ratio: r2(dataPathMs / floor.ms),
    rowsTouched: Math.round(rowsTouched), rowsPulled: Math.round(rowsPulled), rowsPushed: Math.round(rowsPushed),
    // The cache's own rate where a table was cached (hits over lookups); else 1 - pulled / touched (0: every row pulled).
    cacheHitRate: caches.length ? (lookups > 0 ? r2(hits / lookups) : 0) : rowsTouched > 0 ? r2(Math.max(0, 1 - rowsPulled / rowsTouched)) : 0,
    cache: caches.length ? {
      hitsPerStep: Math.round(hits), lookupsPerStep: Math.round(lookups), evictionsPerStep: r2(cacheSum((x) => x.evictions)),
      bytesSavedPerStep: Math.round(cacheSum((x) => x.bytesSaved)), statePullsPerStep: Math.round(cacheSum((x) => x.statePulls)),
    } : null,
    stepMs: r2(stepMs), stepSamplesPerSec: Number.isFinite(stepMs) ? Math.round(sizes.batch / (stepMs / 1000)) : null,
    gpuMs: r2(gpuMs), exposedDataPathMs: r2(exposedMs), exposedShare: Number.isFinite(exposedMs) ? +(exposedMs / stepMs).toFixed(4) : null,
    // The issue's target applies where the GPU time exceeds the data path: exposed <= 10% of the step.
    exposedTarget: Number.isFinite(gpuMs) && gpuMs > dataPathMs ? { applies: true, met: exposedMs <= 0.1 * stepMs } : { applies: false, met: null },
    adapter: results[0]!.adapter,
    steps: { dataPath: dataSteps.length, gpu: gpuSteps.length },
    fillSec: r2(Math.max(...results.map((r) => r.fillSec))), wallSec: r2(wallSec),
    serverRows: results.reduce((a, r) => a + r.serverRows, 0), serverTableBytes: Math.round(results.reduce((a, r) => a + r.serverTableBytes, 0)),
    memoryEstimateBytes: Math.round(need.bytes), workerRssBytes: Math.max(...results.map((r) => r.rssBytes)),
  };
}

/** The configurations a run measures: --config, --all, the quick one or the default ones. */
export function configsOf(args: StepBenchArgs): StepConfig[] {
  return args.config ? pickConfigs(args.config) : args.all ? ALL_CONFIGS : args.quick ? pickConfigs(QUICK_CONFIG) : DEFAULT_CONFIGS;
}

export async function runStepClusterBench(args: StepBenchArgs): Promise<object> {
  const base = args.quick ? QUICK_SIZES : FULL_SIZES;
  const sizes: RunSizes = {
    ...base,
    rowsPerTable: args.rowsPerTable ?? base.rowsPerTable, batch: args.batch ?? base.batch,
    steps: args.steps ?? base.steps, gpuSteps: args.gpuSteps ?? base.gpuSteps,
  };
  for (const [k, v] of Object.entries({ rowsPerTable: sizes.rowsPerTable, batch: sizes.batch, steps: sizes.steps })) {
    if (!Number.isInteger(v) || v < 1) throw new BenchRefusal(`${k} ${v}: must be a positive integer`);
  }
  if (!Number.isInteger(sizes.gpuSteps) || sizes.gpuSteps < 0) throw new BenchRefusal(`gpu steps ${sizes.gpuSteps}: must be an integer >= 0`);
  const configs = configsOf(args);
  const cacheRows = args.cacheRows ?? (args.quick ? 0 : DEFAULT_ROW_CACHE.rows);
  if (!Number.isInteger(cacheRows) || cacheRows < 0) throw new BenchRefusal(`--cache-rows ${cacheRows}: must be an integer >= 0`);
  const hotList = args.hotRows ?? [];
  if (hotList.some((h) => !Number.isInteger(h) || h < 1)) throw new BenchRefusal(`--hot-rows ${hotList.join(',')}: integers >= 1 (rows per table)`);
  // Each SSP configuration without and (cacheRows > 0) with the row cache, each BSP one without and with each hot-row budget, one after the other.
  const policies = cachePolicies(args.cachePolicy), none = policies[0]!;
  const runs = configs.flatMap((c) => (c.consistency.kind === 'ssp' && cacheRows > 0
    ? [{ c, cacheRows: 0, policy: none, hotRows: 0 }, ...(c.optimizer === 'sgd' ? [none] : policies).map((policy) => ({ c, cacheRows, policy, hotRows: 0 }))]
    : [{ c, cacheRows: 0, policy: none, hotRows: 0 }, ...(c.consistency.kind === 'bsp' ? hotList.map((h) => ({ c, cacheRows: 0, policy: none, hotRows: h })) : [])]));
  const need = memoryNeed(configs, sizes.rowsPerTable);
  const refusal = memoryRefusal(configs, sizes.rowsPerTable);
  if (refusal) throw new BenchRefusal(refusal);

  const log = (s: string) => process.stderr.write(s + '\n');
  let interrupted = false;
  const onSignal = () => { interrupted = true; log('\n[bench step] interrupted: stopping every process'); killAll(); setTimeout(() => process.exit(130), 2000).unref(); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  log(`[bench step] ${configs.length} configuration(s): ${configs.map((c) => c.name).join(', ')}; batch ${sizes.batch}, ${TABLES} tables x ${sizes.rowsPerTable} rows x dim ${DIM}; ` +
    `needs ~${(need.bytes / 2 ** 30).toFixed(1)} GB of ${(freemem() / 2 ** 30).toFixed(1)} GB available`);
  const rows: Record<string, unknown>[] = [];
  const floorServer = await spawnFloorServer();
  try {
    for (const { c, cacheRows: rowsCached, policy, hotRows } of runs) {
      log(`[bench step] ${c.name}${rowsCached ? ` with a row cache of ${rowsCached} rows per table` : ''}${hotRows ? ` with ${hotRows} hot rows per table` : ''}: starting the scheduler, ${c.servers} server(s), ${c.workers} worker(s)`);
      const row = await runConfig(c, sizes, args.pipeline ?? true, rowsCached, policy, hotRows, floorServer.port, log);
      log(`[bench step] ${row.name}: data path ${row.dataPathMs} ms, wire floor ${row.wireFloorMs} ms (x${row.ratio}), step with the GPU work ${Number.isFinite(row.stepMs) ? `${row.stepMs} ms` : 'not run (--gpu-steps 0)'} (${row.wallSec} s)`);
      if (row.viewChanges) log(`[bench step] ${row.name}: WARNING the cluster view changed ${row.viewChanges} time(s) during the run (a member lost and back?): its numbers are suspect`);
      rows.push(row);
    }
  } catch (e) {
    if (interrupted) throw new BenchRefusal('interrupted; every process it started is stopped', 130, { cause: e });
    throw e;
  } finally {
    floorServer.proc.stdin!.end();
    killAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const adapter = String(rows[0]?.adapter ?? 'none');
  const adapterShort = adapter.split(/[: ]/)[0]!;
  const software = SOFTWARE_ADAPTER.test(adapter);
  printTable(`Step data path vs one raw TCP stream (${args.pipeline ?? true ? 'pipelined' : 'serial'} step, batch ${sizes.batch}, ${TABLES} tables x ${sizes.rowsPerTable} rows x dim ${DIM}, planted Zipf ids; ms, medians)`, rows.map((r) => {
    const p = r.dataPathPhases as Phases;
    return {
      config: `${r.name}${r.viewChanges ? ' (!)' : ''}`, rows: r.rowsTouched, pulled: r.rowsPulled, hot: r.hotShare, hit: r.cacheHitRate, pullMB: +(Number(r.pullBytes) / 1e6).toFixed(2), prep: p.prep, pull: p.pull, push: p.push, dense: p.dense, clock: p.clock,
      dataPath: r.dataPathMs, workerCpu: r.workerCpuMs, wireFloor: r.wireFloorMs, ratio: r.ratio, ceilingSps: r.ceilingSamplesPerSec, [`step on ${adapterShort}`]: r.stepMs,
    };
  }));
  if (rows.some((r) => r.phases)) {
    printTable(`The same step with the GPU work, on ${adapter} (ms, medians; gpu = upload + compute + download, exposed = step - gpu)`, rows.filter((r) => r.phases).map((r) => ({
      config: r.name, ...(r.phases as Phases), step: r.stepMs, gpu: r.gpuMs, exposed: r.exposedDataPathMs, 'exposed %': +(100 * Number(r.exposedShare)).toFixed(2), dataPath: r.dataPathMs, samplesPerSec: r.stepSamplesPerSec,
    })));
  }
  const targets = { 's2-w1-adagrad-bsp': 6, 's2-w1-adagrad-ssp2+cache': 2 };
  if (software) console.log(`step on ${adapterShort}: the real GPU work on a software adapter (Mesa lavapipe, on the CPU): it says nothing about GPU speed`);
  if (rows.some((r) => r.viewChanges)) console.log('(!): the cluster view changed during that configuration (a member lost and back?): its numbers are suspect');
  console.log(`targets (issue): dataPathMs / wireFloorMs <= 6 for s2-w1-adagrad-bsp, <= 2 for s2-w1-adagrad-ssp2 with the row cache (+cache rows); ` +
    'with GPU steps, exposed data path (step - gpu) <= 10% of the step where gpu > dataPath');
  return {
    bench: 'step', preset: 'gpu', pipeline: args.pipeline ?? true, batch: sizes.batch, rowsPerTable: sizes.rowsPerTable, tables: TABLES, dim: DIM,
    ids: 'planted Zipf(1.1) through per-table permutations (src/data/synthetic.ts plantedSamples)',
    sizes, adapter, softwareAdapter: software, machine: { cpus: cpus().length, loadavg: loadavg().map(r2), totalmemBytes: totalmem() },
    configs: rows, targets,
  };
}
