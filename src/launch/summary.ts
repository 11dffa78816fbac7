// The end of a training run: the workers' results folded into one summary (throughput, mean phase
// times, bytes on the wire by kind, rank 0's held-out logloss and AUC), printed for people or as
// the `--json` object.
import { consistencyName, type TrainConfig } from '../train/config.ts';
import type { WorkerResult, EvalResult } from '../train/worker.ts';
import type { RunSummary, RunHistory, RunCacheSummary } from './compare-report.ts';
import { fmtBytes } from '../util/units.ts';
import type { RowFormat } from '../wire/row-format.ts';
import { basename } from 'node:path';

export interface TrainSummary extends RunSummary {
  results: WorkerResult[];
  /** Workers that died during the run (with keepGoing). */
  failedWorkers: string[];
  evals: EvalResult[];
  checkpoint?: string;
  /** Lines and bad lines of the whole file as the workers read it; `parsedPerWorker` by rank. */
  data: { path: string; split: 'bytes' | 'stream'; lines: number; parsedPerWorker: number[]; bad: number; badLines: { file: string; line: number; why: string }[] };
  wallSec: number;
  /** How row values travelled (--wire-rows): what the pull and push bytes were counted at. */
  wireRows: RowFormat;
}

/** What the launcher heard from the workers during a run. */
export interface RunRecord {
  results: WorkerResult[];
  failedWorkers: string[];
  evals: EvalResult[];
  history: RunHistory;
  checkpoint?: string;
  wallSec: number;
  plantedAuc?: number;
}

export function summarize(cfg: TrainConfig, run: RunRecord): TrainSummary {
  const results = [...run.results].sort((a, b) => a.rank - b.rank);
  const r0 = results[0];
  if (!r0 || results.length + run.failedWorkers.length !== cfg.workers) throw new Error(`only ${results.length} of ${cfg.workers} workers reported a result`);
  const final = r0.eval;
  if (!final) throw new Error('rank 0 reported no final evaluation');
  // Training time leaves out rank 0's periodic evaluations: under BSP and SSP the others wait for
  // it at the next clock, under ASP rank 0 finishes last by that much, so the slowest worker's time
  // less rank 0's evaluation time is the time spent training either way.
  const trainSec = Math.max(...results.map((r) => r.wallSec)) - r0.evalSec;
  const samples = results.reduce((a, r) => a + r.samples, 0);
  const phaseTotals: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.phaseMs)) phaseTotals[k] = (phaseTotals[k] ?? 0) + v;
  const stepsRun = r0.steps;
  const phases = Object.fromEntries(Object.entries(phaseTotals).map(([k, v]) => [k, v / Math.max(1, stepsRun * results.length)]));
  const bytes = {
    pull: results.reduce((a, r) => a + r.bytes.pull, 0), push: results.reduce((a, r) => a + r.bytes.push, 0),
    allreduce: results.reduce((a, r) => a + r.bytes.allreduce, 0),
  };
  return {
    cache: cacheSummary(results),
    model: r0.model, mode: cfg.mode, consistency: consistencyName(cfg.consistency), workers: cfg.workers, servers: cfg.servers, steps: stepsRun,
    samplesPerSec: samples / Math.max(trainSec, 1e-9), logloss: final.logloss, auc: final.auc, bytes, phases, history: run.history,
    plantedAuc: run.plantedAuc, results, failedWorkers: run.failedWorkers, evals: run.evals, checkpoint: run.checkpoint, wallSec: run.wallSec, wireRows: cfg.wireRows,
    data: dataSummary(cfg.data, results), settings: { batch: cfg.batch, optimizer: { ...cfg.optimizer }, lr: { ...cfg.lr } },
  };
}

/** 'bytes': each worker read its own lines, so the file's totals are sums; 'stream': every worker read all of it. */
function dataSummary(path: string, results: WorkerResult[]): TrainSummary['data'] {
  const r0 = results[0]!.data, shared = r0.split === 'bytes';
  const badLines = shared ? results.flatMap((r) => r.data.badLines) /* by rank: the shares are in data order */ : r0.badLines;
  return {
    path, split: r0.split, parsedPerWorker: results.map((r) => r.data.parsed), badLines,
    lines: shared ? results.reduce((a, r) => a + r.data.lines, 0) : r0.lines, bad: shared ? results.reduce((a, r) => a + r.data.bad, 0) : r0.bad,
  };
}

/** The workers' row-cache counters summed (undefined when no worker cached a table). */
function cacheSummary(results: WorkerResult[]): RunCacheSummary | undefined {
  const cached = results.flatMap((r) => (r.cache ? [r.cache] : []));
  if (!cached.length) return undefined;
  const sum = (f: (c: NonNullable<WorkerResult['cache']>) => number) => cached.reduce((a, c) => a + f(c), 0);
  const hits = sum((c) => c.hits), misses = sum((c) => c.misses);
  return { hitRate: hits + misses > 0 ? hits / (hits + misses) : 0, hits, misses, evictions: sum((c) => c.evictions), bytesSaved: sum((c) => c.bytesSaved) };
}

/** The end-of-run summary, for people. */
export function formatSummary(s: TrainSummary): string {
  const lines = [
    `trained ${s.model}, ${s.steps} steps (${s.mode}, ${s.consistency}, ${s.workers} worker(s), ${s.servers} server(s)) in ${s.wallSec.toFixed(1)} s`,
    `  throughput   ${s.samplesPerSec.toFixed(0)} samples/s`,
    `  per step     ${Object.entries(s.phases).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}`,
    `  on the wire  pull ${fmtBytes(s.bytes.pull)}, push ${fmtBytes(s.bytes.push)}, allreduce ${fmtBytes(s.bytes.allreduce)}${s.wireRows === 'f32' ? '' : ` (rows as ${s.wireRows})`}`,
    `  held-out     logloss ${s.logloss.toFixed(4)}, AUC ${s.auc.toFixed(4)}${s.plantedAuc !== undefined ? ` (planted model: ${s.plantedAuc.toFixed(4)}, gap ${(s.plantedAuc - s.auc).toFixed(4)})` : ''}`,
  ];
  if (s.cache) {
    const c = s.cache;
    lines.push(`  row cache    hit rate ${(100 * c.hitRate).toFixed(1)}% (${c.hits} of ${c.hits + c.misses} rows), ${c.evictions} evictions, ${fmtBytes(c.bytesSaved)} of pulls saved`);
  }
  lines.push(`  data         ${s.data.lines} lines, split by ${s.data.split}; lines parsed per worker: ${s.data.parsedPerWorker.join(', ')}`);
  if (s.data.bad > 0) {
    lines.push(`  data         ${s.data.bad} bad line(s) of ${s.data.lines} skipped; first: ${s.data.badLines.slice(0, 5).map((b) => `${basename(b.file)}:${b.line}: ${b.why}`).join('; ')}`);
  }
  if (s.checkpoint) lines.push(`  checkpoint   ${s.checkpoint}`);
  if (s.failedWorkers.length) lines.push(`  failures     ${s.failedWorkers.join(', ')} died during the run; the others finished it`);
  return lines.join('\n');
}

/** The `--json` object. */
export function summaryJson(s: TrainSummary): object {
  return {
    model: s.model, mode: s.mode, consistency: s.consistency, workers: s.workers, servers: s.servers, steps: s.steps,
    samplesPerSec: +s.samplesPerSec.toFixed(1), logloss: s.logloss, auc: s.auc, bytes: s.bytes, wireRows: s.wireRows, phasesMs: s.phases,
    ...(s.plantedAuc !== undefined ? { plantedAuc: s.plantedAuc } : {}),
    ...(s.cache ? { cache: { ...s.cache, hitRate: +s.cache.hitRate.toFixed(4) } } : {}),
    data: s.data, checkpoint: s.checkpoint, wallSec: +s.wallSec.toFixed(2), evals: s.evals,
    denseHashes: s.results.map((r) => r.denseHash), failedWorkers: s.failedWorkers,
  };
}
