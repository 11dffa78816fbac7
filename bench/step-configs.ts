// The step benchmark's configurations (servers, workers, the servers' optimizer, consistency),
// their names on the command line, the run's sizes (full, --quick) and the memory a run needs.
import { freemem, totalmem } from 'node:os';
import { DLRM_PRESETS } from '../src/model/dlrm.ts';

/**
 * A run that cannot start (not enough memory, a bad flag) or was interrupted: the message says
 * why, `exitCode` is the status the command exits with (130 after Ctrl-C).
 */
export class BenchRefusal extends Error {
  override name = 'BenchRefusal';
  constructor(message: string, readonly exitCode = 1, options?: ErrorOptions) { super(message, options); }
}

export type OptimizerChoice = 'sgd' | 'adagrad';
export interface ConsistencyChoice { kind: 'bsp' | 'ssp'; staleness: number }

export interface StepConfig {
  /** e.g. s2-w1-adagrad-bsp, s2-w2-adagrad-ssp2 */
  name: string;
  servers: number;
  workers: number;
  optimizer: OptimizerChoice;
  consistency: ConsistencyChoice;
}

export interface RunSizes {
  /** Samples per worker per step. */
  batch: number;
  rowsPerTable: number;
  /** Untimed data-path steps, then timed ones. */
  warmup: number;
  steps: number;
  /** Untimed GPU steps (the first compiles and allocates), then timed ones; 0 timed: no GPU part. */
  gpuWarmup: number;
  gpuSteps: number;
  /** Timed rounds of the raw TCP floor, in blocks between blocks of timed data-path steps (after `warmup` untimed ones). */
  floorRounds: number;
}

export const TABLES = DLRM_PRESETS.gpu!.numTables;
export const DIM = DLRM_PRESETS.gpu!.dim;

export function configName(c: Omit<StepConfig, 'name'>): string {
  return `s${c.servers}-w${c.workers}-${c.optimizer}-${c.consistency.kind}${c.consistency.kind === 'ssp' ? c.consistency.staleness : ''}`;
}

function config(servers: number, workers: number, optimizer: OptimizerChoice, consistency: ConsistencyChoice): StepConfig {
  const c = { servers, workers, optimizer, consistency };
  return { name: configName(c), ...c };
}

const BSP: ConsistencyChoice = { kind: 'bsp', staleness: 0 };
const SSP2: ConsistencyChoice = { kind: 'ssp', staleness: 2 };

/** Every combination: S in {1, 2} x W in {1, 2} x {SGD, AdaGrad} x {BSP, SSP:2}. */
export const ALL_CONFIGS: StepConfig[] = [1, 2].flatMap((s) => [1, 2].flatMap((w) =>
  (['sgd', 'adagrad'] as const).flatMap((o) => [BSP, SSP2].map((c) => config(s, w, o, c)))));

/**
 * The default run: the two targets (BSP and SSP:2 with 1 worker, 2 servers, AdaGrad),
 * today's single-server SGD step for comparison with the in-process bench/step.ts, and the hybrid
 * W = 2 case (dense part by the ring allreduce) under BSP and SSP:2.
 */
export const DEFAULT_CONFIGS: StepConfig[] = [
  config(1, 1, 'sgd', BSP),
  config(2, 1, 'adagrad', BSP),
  config(2, 1, 'adagrad', SSP2),
  config(2, 2, 'adagrad', BSP),
  config(2, 2, 'adagrad', SSP2),
];

/** The configurations a `--config` value names (comma-separated names from ALL_CONFIGS). */
export function pickConfigs(names: string): StepConfig[] {
  return names.split(',').map((n) => n.trim().toLowerCase()).filter(Boolean).map((n) => {
    const c = ALL_CONFIGS.find((x) => x.name === n);
    if (!c) throw new BenchRefusal(`--config ${n}: not a configuration; one of ${ALL_CONFIGS.map((x) => x.name).join(', ')}`);
    return c;
  });
}

export const FULL_SIZES: RunSizes = { batch: 2048, rowsPerTable: DLRM_PRESETS.gpu!.rowsPerTable, warmup: 5, steps: 20, gpuWarmup: 1, gpuSteps: 1, floorRounds: 32 };
/** CI-sized: small batch and tables, a few steps, one timed GPU step. */
export const QUICK_SIZES: RunSizes = { batch: 256, rowsPerTable: 20_000, warmup: 2, steps: 3, gpuWarmup: 1, gpuSteps: 1, floorRounds: 5 };

// ---- memory ----

const MB = 1 << 20;
/**
 * Resident memory of a process apart from the tables (measured on the development VM: a
 * scheduler or server ~100-150 MB; a worker with Dawn on lavapipe and the gpu preset's buffers
 * at batch 2048 ~0.6-0.9 GB; the data-path phase alone far less), rounded up.
 */
const PROCESS_BYTES = { scheduler: 200 * MB, server: 250 * MB, worker: 1200 * MB, other: 300 * MB };

/**
 * Bytes a server holds for one table shard of `rows` rows, following src/server/table-store.ts
 * and src/keys/key-index.ts: slabs (the row, its optimizer slots, an update count) start at 64
 * rows and double below 65 536 rows, then grow by 1/8; the key index has 12-byte buckets, a
 * power of two of them at load <= 0.7. Plus one slab's worth for the copy while a slab grows.
 */
export function shardBytes(rows: number, optimizer: OptimizerChoice, dim = DIM): number {
  const slots = optimizer === 'adagrad' ? 1 : 0;
  let cap = 64;
  while (cap < rows) cap = cap < 65_536 ? cap * 2 : cap + Math.ceil(cap / 8);
  let buckets = 16;
  while (Math.floor(buckets * 0.7) < rows) buckets *= 2;
  return cap * (dim * 4 * (1 + slots) + 4) + buckets * 12;
}

export interface MemoryNeed { bytes: number; tableBytes: number; config: string; rows: number }

/** What the most demanding configuration needs while it runs (one configuration runs at a time). */
export function memoryNeed(configs: StepConfig[], rowsPerTable: number): MemoryNeed {
  const rows = TABLES * rowsPerTable;
  return configs.map((c) => {
    // Keys hash evenly over the servers; 3% more on the fuller one, and one slab growing.
    const shard = Math.ceil((rowsPerTable / c.servers) * 1.03);
    const tableBytes = c.servers * TABLES * shardBytes(shard, c.optimizer) + shard * DIM * 4;
    const bytes = tableBytes + PROCESS_BYTES.scheduler + c.servers * PROCESS_BYTES.server + c.workers * PROCESS_BYTES.worker + PROCESS_BYTES.other;
    return { bytes, tableBytes, config: c.name, rows };
  }).reduce((a, b) => (b.bytes > a.bytes ? b : a));
}

const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;

/** Null when the machine has the memory, else the sentence that says why the run cannot start. */
export function memoryRefusal(configs: StepConfig[], rowsPerTable: number, free = freemem(), total = totalmem()): string | null {
  const budget = free * 0.9; // the machine is shared: leave a margin
  const need = memoryNeed(configs, rowsPerTable);
  if (need.bytes <= budget) return null;
  let lo = 0, hi = rowsPerTable; // the largest rowsPerTable that fits: need grows with rows
  while (hi - lo > 1) { const mid = Math.floor((lo + hi) / 2); if (memoryNeed(configs, mid).bytes <= budget) lo = mid; else hi = mid; }
  return `the step benchmark needs ~${gb(need.bytes)} of memory for ${need.config} (${TABLES} tables x ${rowsPerTable} rows = ${need.rows} rows at ` +
    `~${Math.round(need.tableBytes / need.rows)} bytes/row on the servers: ${gb(need.tableBytes)}, plus ~${gb(need.bytes - need.tableBytes)} for the processes), ` +
    `but this machine has ${gb(free)} available of ${gb(total)}${need.bytes > total ? ' (more than it has at all)' : ''}; ` +
    (lo > 0 ? `--rows-per-table ${lo} or fewer would fit, ` : '') + 'or use a bigger machine.';
}
