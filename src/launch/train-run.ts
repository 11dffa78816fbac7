// One training run (`hybridps launch samples/dlrm`): a scheduler, S servers and W GPU workers as
// child processes of this one, training until the steps or the data run out. Shows progress (a bar
// on a terminal, periodic lines otherwise) from the workers' reports, asks them for a checkpoint on
// SIGUSR2, stops everything on Ctrl-C or on the first failure, and returns the summary.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import cliProgress from 'cli-progress';
import { LocalCluster, type ChildInfo } from './local-cluster.ts';
import { consistencyName, validateConfig, type TrainConfig } from '../train/config.ts';
import type { WorkerProgress, WorkerResult, EvalResult, WorkerEvent } from '../train/worker.ts';
import { sendToChild } from './child-protocol.ts';
import { resolveCheckpoint } from '../train/checkpoint.ts';
import type { RunHistory } from './compare-report.ts';
import { summarize, type TrainSummary } from './summary.ts';
import { readDataMeta } from './train-job.ts';
import { makeLocalTls } from './tls-certs.ts';

export interface TrainRunOptions {
  /** Where the summary and progress go (stderr when the caller prints JSON on stdout). */
  out?: NodeJS.WritableStream;
  /** Show a progress bar when `out` is a terminal (default true). */
  progress?: boolean;
  /** Label in progress lines (compare runs two). */
  label?: string;
  /** Extra Node flags for the children. */
  nodeArgs?: string[];
  /** A worker other than rank 0 dying does not stop the run (the others continue). */
  keepGoing?: boolean;
  /** Mutual TLS on every link, with a throwaway CA and certificates made in the run's directory. */
  tls?: boolean;
}

/** A directory holding both paths: the servers' checkpoint root (they refuse paths outside it). */
function commonRoot(paths: string[]): string {
  const parts = paths.map((p) => resolve(p).split(sep));
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const seg = parts[0]![i];
    if (seg === undefined || parts.some((p) => p[i] !== seg)) break;
    out.push(seg);
  }
  return out.join(sep) || sep;
}

/** The steps a run will take: --steps, or what the data's sidecar says one pass gives; 0 when unknown. */
export function plannedSteps(cfg: TrainConfig): number {
  if (cfg.steps > 0) return cfg.steps;
  const meta = readDataMeta(cfg.data);
  return meta?.samples ? Math.floor((meta.samples - Math.floor(meta.samples / cfg.evalEvery)) * cfg.epochs / (cfg.batch * cfg.workers)) : 0;
}

export async function runTraining(cfg: TrainConfig, o: TrainRunOptions = {}): Promise<TrainSummary> {
  validateConfig(cfg);
  if (cfg.resume) await resolveCheckpoint(cfg.resume); // a wrong path fails here, before any process starts
  const out = o.out ?? process.stdout;
  const say = (s: string) => out.write(s + '\n');
  const label = o.label ? `[${o.label}] ` : '';
  const meta = readDataMeta(cfg.data);
  if (meta?.rowsPerTable !== undefined && meta.rowsPerTable !== cfg.model.rowsPerTable) {
    say(`${label}note: ${cfg.data} was generated with ${meta.rowsPerTable} rows per table; the model uses ${cfg.model.rowsPerTable}`);
  }
  const totalSteps = plannedSteps(cfg);

  const ckptRoot = cfg.checkpointDir || cfg.resume ? commonRoot([cfg.checkpointDir, cfg.resume].filter((p): p is string => !!p)) : undefined;
  if (cfg.checkpointDir) mkdirSync(cfg.checkpointDir, { recursive: true });
  const logs: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'hybridps-train-'));
  let tls;
  try { tls = o.tls ? makeLocalTls(join(dir, 'tls')) : undefined; } catch (e) { rmSync(dir, { recursive: true, force: true }); throw e; }
  const cluster = new LocalCluster({
    servers: cfg.servers, replicas: cfg.replicas > 1 ? cfg.replicas : undefined, nodeArgs: o.nodeArgs, tls,
    extraServerArgs: ckptRoot ? ['--checkpoint-root', ckptRoot] : [],
    // Warnings and errors reach the user; the rest is kept for a failure report.
    log: (l) => { logs.push(l); if (logs.length > 200) logs.shift(); if (/\b(WARN|ERROR)\b|Error|error:/.test(l)) say(`${label}${l}`); },
  });
  const cfgFile = join(dir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(cfg));

  const results: WorkerResult[] = [];
  const failedWorkers: string[] = [];
  const evals: EvalResult[] = [];
  const history: RunHistory = { step: [], wallSec: [], loss: [], pullBytes: [], pushBytes: [], allreduceBytes: [] };
  let lastBytes = { pull: 0, push: 0, allreduce: 0 };
  let checkpoint: string | undefined;
  const t0 = performance.now();

  const tty = (o.progress ?? true) && (out as NodeJS.WriteStream).isTTY === true;
  const bar = tty ? new cliProgress.SingleBar({
    format: `${label}{bar} {value}/{total} steps | {rate} samples/s | loss {loss} | ETA {eta_formatted}`, hideCursor: true, stream: out as NodeJS.WriteStream,
  }, cliProgress.Presets.shades_classic) : null;
  let lastLine = 0, barStarted = false;
  const progress = (p: WorkerProgress) => {
    if (p.rank !== 0) return; // rank 0 speaks for the step (BSP keeps everyone within a step)
    history.step.push(p.step); history.wallSec.push(p.wallSec); history.loss.push(p.loss);
    history.pullBytes.push(p.bytes.pull - lastBytes.pull); history.pushBytes.push(p.bytes.push - lastBytes.push);
    history.allreduceBytes.push(p.bytes.allreduce - lastBytes.allreduce);
    lastBytes = p.bytes;
    const rate = (p.samples * cfg.workers) / Math.max(p.wallSec, 1e-9);
    if (bar) { if (!barStarted) { bar.start(totalSteps || p.step, 0, { rate: '-', loss: '-' }); barStarted = true; } bar.update(p.step, { rate: rate.toFixed(0), loss: p.loss.toFixed(4) }); if (!totalSteps) bar.setTotal(p.step); }
    else if (performance.now() - lastLine > 5000 || p.step === totalSteps) {
      lastLine = performance.now();
      const eta = totalSteps ? ` eta ${(((totalSteps - p.step) * p.wallSec) / Math.max(1, p.step)).toFixed(0)}s` : '';
      say(`${label}step ${p.step}${totalSteps ? `/${totalSteps}` : ''}  loss ${p.loss.toFixed(4)}  ${rate.toFixed(0)} samples/s${eta}`);
    }
  };
  // Checkpoint on request: SIGUSR2 asks every worker to checkpoint at a step none has finished yet
  // (the furthest step any reported, plus 2: BSP keeps them within one step; SSP within its bound).
  let furthest = 0;
  const workerProcs: ChildInfo[] = [];
  const onCheckpointRequest = () => {
    if (!cfg.checkpointDir) { say(`${label}checkpoint requested (SIGUSR2), but the run has no --checkpoint-dir`); return; }
    const at = furthest + 2 + (cfg.consistency.kind === 'ssp' ? cfg.consistency.staleness : 0);
    say(`${label}checkpoint requested: at step ${at}`);
    for (const w of workerProcs) sendToChild(w.proc, { kind: 'checkpointAt', step: at });
  };
  process.on('SIGUSR2', onCheckpointRequest);
  const onWorkerReport = (m: WorkerEvent) => {
    if (m.kind === 'progress') { furthest = Math.max(furthest, m.progress.step); progress(m.progress); }
    else if (m.kind === 'eval') { evals.push(m.eval); if (!bar) say(`${label}eval at step ${m.eval.step}: logloss ${m.eval.logloss.toFixed(4)}, AUC ${m.eval.auc.toFixed(4)} (${m.eval.samples} samples)`); }
    else if (m.kind === 'checkpoint') { checkpoint = m.dir; if (!bar) say(`${label}checkpoint: ${m.dir}`); }
    else results.push(m.result);
  };
  // A malformed message from a worker ends the run with that error (it is a bug, not data).
  let failRun: (e: Error) => void = () => {};
  const runFailed = new Promise<never>((_, reject) => { failRun = reject; });
  runFailed.catch(() => {}); // awaited below, maybe after it failed

  try {
    await cluster.start();
    say(`${label}cluster: scheduler ${cluster.schedulerUrl}, ${cfg.servers} server(s), ${cfg.workers} worker(s); ${cfg.mode}, ${consistencyName(cfg.consistency)}, batch ${cfg.batch}/worker, data ${cfg.data}`);
    say(`${label}links: ${tls ? `mutual TLS, a throwaway CA and certificates in ${tls.dir} (removed at the end)` : 'plain (unencrypted; --tls for mutual TLS)'}`);
    const workers: ChildInfo[] = [];
    for (let i = 0; i < cfg.workers; i++) {
      workers.push(await cluster.spawnRole(`worker ${i}`, ['worker', '--scheduler', cluster.schedulerUrl, '--node-id', `worker-${i}`, '--config', cfgFile], {
        timeoutMs: 60_000, onMessage: onWorkerReport, onStdout: (line) => logs.push(line), onProtocolError: (e) => failRun(new Error(`worker ${i}: ${e.message}`)),
      }));
    }
    workerProcs.push(...workers);
    // Every worker must exit 0; the first failure stops the run, unless keepGoing: then the others
    // carry on (the scheduler drops the dead worker from the view, so BSP clocks, barriers and the
    // allreduce ring continue with those left), as long as rank 0 (evaluation, checkpoints) lives.
    await Promise.race([runFailed, new Promise<void>((resolveAll, reject) => {
      let left = workers.length;
      const finish = () => { if (--left === 0) resolveAll(); };
      for (const w of workers) {
        const done = (code: number | null, sig: string | null) => {
          if (code === 0) return finish();
          const why = `${w.nodeId} exited with ${code ?? sig}`;
          if (o.keepGoing && w.nodeId !== 'worker-0') {
            failedWorkers.push(w.nodeId!);
            say(`${label}${why}; continuing with the other workers (--keep-going)`);
            return finish();
          }
          const relevant = logs.filter((l) => l.includes(w.nodeId!) || /\b(WARN|ERROR)\b|Error/.test(l)).slice(-15);
          reject(new Error(`${why}; last log lines:\n  ${(relevant.length ? relevant : logs.slice(-15)).join('\n  ')}`));
        };
        if (w.proc.exitCode !== null) done(w.proc.exitCode, null); else w.proc.once('exit', done);
      }
    })]);
  } finally {
    process.off('SIGUSR2', onCheckpointRequest);
    bar?.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const wallSec = (performance.now() - t0) / 1000;
  return summarize(cfg, { results, failedWorkers, evals, history, checkpoint, wallSec, plantedAuc: meta?.plantedAuc });
}
