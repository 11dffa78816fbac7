// What a training run is: the model (a model module and its configuration), the cluster shape, the layout (hybrid or pure-PS), the
// consistency model, the optimisation settings, data, evaluation and checkpoints. The launcher
// builds one from flags (and a sample's defaults), validates it, and hands the same JSON to every
// worker process, so all workers train exactly the same model.
import type { ModelConfig } from '../model/model-module.ts';
import { DEFAULT_ROW_CACHE } from '../worker/worker-step.ts';

/** Hot rows per BSP table by default (bench/RESULTS.md, 2026-12-02 session 6). */
export const DEFAULT_HOT_ROWS = 0;
import { isRowFormat, ROW_FORMATS, type RowFormat } from '../wire/row-format.ts';
import { DENSE_OPTIMIZERS, BUILTIN_OPTIMIZERS, isOneOf, type ConsistencyModel, type DenseOptimizerName, type OptimizerName } from '../wire/vocabulary.ts';
export { parseConsistency, consistencyName, type DenseOptimizerName } from '../wire/vocabulary.ts';

export type Mode = 'hybrid' | 'pure-ps';

export interface TrainConfig<C extends ModelConfig = ModelConfig> {
  /** The model module: a built-in name ("dlrm") or the absolute path of a sample's module file (train/model-loader.ts). */
  modelModule: string;
  /** The module's preset the configuration started from, if any (for the manifest and the record). */
  preset?: string;
  /** The model's configuration, checked by its module. */
  model: C;
  servers: number;
  workers: number;
  replicas: number;
  mode: Mode;
  consistency: ConsistencyModel;
  /** Samples per worker per step (the global batch is batch x workers). */
  batch: number;
  /** Steps to run; 0 = as many as `epochs` passes over the training data give. */
  steps: number;
  epochs: number;
  lr: { emb: number; dense: number };
  optimizer: { emb: OptimizerName; dense: DenseOptimizerName };
  /** Criteo-layout file (plain or gzip). */
  data: string;
  /** Every k-th line (k-1 mod k) is held out for evaluation. */
  evalEvery: number;
  /** Evaluate every this many steps during training (0: only at the end), on `evalSamples` held-out samples. */
  evalSteps: number;
  evalSamples: number;
  checkpointDir?: string;
  /** Checkpoint every this many steps (0: only at the end, when checkpointDir is set). */
  checkpointEvery: number;
  /** A checkpoint directory (a step-N directory, or a checkpoint root with a `latest` file). */
  resume?: string;
  /** Resuming from a `dense.safetensors` that lacks some dense parameters: start those fresh (logged) instead of refusing. */
  partialDense: boolean;
  seed: number;
  /**
   * How row values travel between workers and servers (pull replies, pushes; docs/wire.md). 'f16'
   * (`--f16`) also sends the dense allreduce as fp16, as `--f16` always did; under 'bf16' the
   * allreduce stays f32 (its segments know only f32 and f16, docs/allreduce.md).
   */
  wireRows: RowFormat;
  /** Each worker reads its own byte range of the file ('bytes'), or every worker reads the whole stream ('stream'); see batches.ts. */
  dataSplit: 'bytes' | 'stream';
  /** Bad data lines: skip (counted, reported) or stop. */
  onBadLine: 'skip' | 'fatal';
  /** Pipelined worker step (docs/training.md): prep and, where consistency allows, pulls of the next batch overlap the GPU. */
  pipeline: boolean;
  /** Worker-side row cache (src/worker/row-cache.ts): rows held per SSP/ASP SGD table, 0 = off. */
  cacheRows: number;
  /** ASP: clocks a cached row is served after the clock it was read at. */
  cacheRefresh: number;
  /** Hot rows held on every worker per BSP table in hybrid mode (train/hot-setup.ts): a count, or below 1 a fraction of the table's rows; 0 = off. */
  hotRows: number;
}

export const DEFAULTS: Omit<TrainConfig, 'model' | 'data'> = {
  modelModule: 'dlrm', servers: 2, workers: 2, replicas: 1, mode: 'hybrid',
  consistency: { kind: 'bsp', staleness: 0 },
  batch: 256, steps: 0, epochs: 1,
  lr: { emb: 0.05, dense: 0.05 }, optimizer: { emb: 'adagrad', dense: 'adagrad' },
  evalEvery: 10, evalSteps: 0, evalSamples: 4096, checkpointEvery: 0, partialDense: false, seed: 1, wireRows: 'f32', onBadLine: 'skip', dataSplit: 'bytes', pipeline: true,
  // The row cache is off unless asked for: on one box it has cost the worker more CPU than its
  // hits save in every configuration measured (bench step, SSP:2, 1 and 2 workers, SGD and
  // AdaGrad; docs/training.md, "Row cache").
  cacheRows: 0, cacheRefresh: DEFAULT_ROW_CACHE.aspRefresh, hotRows: DEFAULT_HOT_ROWS,
};

/**
 * Per-part settings: `0.05` for both parts, or `emb=0.1,dense=0.01` (either part may be left
 * out, keeping its default).
 */
export function parsePerPart<T>(s: string, parse: (v: string) => T, defaults: { emb: T; dense: T }, flag: string): { emb: T; dense: T } {
  if (!s.includes('=')) { const v = parse(s); return { emb: v, dense: v }; }
  const out = { ...defaults };
  for (const part of s.split(',')) {
    const [k, v] = part.split('=').map((x) => x.trim());
    if ((k !== 'emb' && k !== 'dense') || !v) throw new Error(`${flag} ${s}: expected VALUE or emb=VALUE,dense=VALUE`);
    out[k] = parse(v);
  }
  return out;
}

/** Throws one message listing everything wrong with `c`. */
export function validateConfig(c: TrainConfig): void {
  const bad: string[] = [];
  const posInt = (v: number, name: string, min = 1) => { if (!Number.isInteger(v) || v < min) bad.push(`${name} must be an integer >= ${min} (got ${v})`); };
  posInt(c.servers, '--servers'); posInt(c.workers, '--workers'); posInt(c.replicas, '--replicas');
  if (c.replicas > c.servers) bad.push(`--replicas ${c.replicas} needs at least as many servers (got ${c.servers})`);
  posInt(c.batch, '--batch'); posInt(c.steps, '--steps', 0); posInt(c.epochs, '--epochs');
  posInt(c.evalEvery, 'evalEvery', 2); posInt(c.evalSteps, '--eval-every', 0); posInt(c.evalSamples, '--eval-samples');
  posInt(c.checkpointEvery, '--checkpoint-every', 0);
  posInt(c.cacheRows, '--cache-rows', 0); posInt(c.cacheRefresh, '--cache-refresh');
  if (!(c.hotRows >= 0 && (c.hotRows < 1 || Number.isInteger(c.hotRows)))) bad.push(`--hot-rows ${c.hotRows}: a row count per table (an integer >= 0) or a fraction of the table's rows below 1`);
  if (c.mode !== 'hybrid' && c.mode !== 'pure-ps') bad.push(`--mode ${c.mode}: hybrid or pure-ps`);
  for (const [k, v] of Object.entries(c.lr)) if (!(v > 0) || !Number.isFinite(v)) bad.push(`--lr ${k}=${v}: must be a positive number`);
  if (!isOneOf(BUILTIN_OPTIMIZERS, c.optimizer.emb)) bad.push(`--optimizer emb=${c.optimizer.emb}: one of ${BUILTIN_OPTIMIZERS.join(', ')}`);
  if (!isOneOf(DENSE_OPTIMIZERS, c.optimizer.dense)) bad.push(`--optimizer dense=${c.optimizer.dense}: one of ${DENSE_OPTIMIZERS.join(', ')}`);
  if (typeof c.modelModule !== 'string' || !c.modelModule) bad.push('no modelModule (a built-in model name such as "dlrm", or the absolute path of a model module file; hybridps launch writes it)');
  if (!c.model || !Number.isInteger(c.model.rowsPerTable) || c.model.rowsPerTable < 1) bad.push(`model.rowsPerTable must be an integer >= 1 (got ${JSON.stringify(c.model?.rowsPerTable)})`);
  if (!isRowFormat(c.wireRows)) {
    const legacy = (c as { f16?: unknown }).f16 !== undefined ? ' (a configuration written before --wire-rows says "f16": true|false; write "wireRows": "f16"|"f32" instead, or render it again)' : '';
    bad.push(`--wire-rows ${JSON.stringify(c.wireRows)}: one of ${ROW_FORMATS.join(', ')}${legacy}`);
  }
  if (c.dataSplit !== 'bytes' && c.dataSplit !== 'stream') bad.push(`--data-split ${c.dataSplit}: bytes or stream`);
  if (c.checkpointEvery > 0 && !c.checkpointDir) bad.push('--checkpoint-every needs --checkpoint-dir');
  if (!c.data) bad.push('no data file');
  if (bad.length) throw new Error(`invalid training configuration:\n  ${bad.join('\n  ')}`);
}
