// Helpers for the end-to-end training tests: small Criteo-layout files, tiny-model configs, and
// reading a training checkpoint back (tables by key, dense vector in the model's layout).
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listShardFiles, loadCheckpointFiles } from '../../src/checkpoint/index.ts';
import { DEFAULTS, type TrainConfig } from '../../src/train/config.ts';
import { DLRM_PRESETS, dlrmSpec, type DlrmConfig } from '../../src/model/dlrm.ts';
import type { ModelConfig } from '../../src/model/model-module.ts';
import { denseSizes } from '../../src/model/model-spec.ts';
import { mulberry32 } from '../../src/util/hash.ts';

/** A DLRM small enough for lavapipe and for a float64 reference: 3 tables of dim 4. */
export const TINY_MODEL = { numTables: 3, dim: 4, bottom: [13, 8, 4], top: [6, 1], rowsPerTable: 40 };

/**
 * A fresh temporary directory, removed when the test process exits successfully; after a failure
 * it is kept (and named on stderr) so its checkpoints and logs can be looked at.
 */
export function tmp(prefix = 'hps-train-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', (code) => {
    if (code === 0 && !process.exitCode) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept ${dir} for inspection\n`);
  });
  return dir;
}

/** `n` random lines in the Criteo layout (some fields empty), labels tied weakly to feature 0. */
export function writeRandomCriteo(path: string, n: number, seed: number): string {
  const r = mulberry32(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const dense = Array.from({ length: 13 }, () => (r() < 0.1 ? '' : String(Math.floor(r() * r() * 50))));
    const cats = Array.from({ length: 26 }, () => (r() < 0.05 ? '' : (Math.floor(r() * 2 ** 32) >>> 0).toString(16).padStart(8, '0')));
    const label = r() < 0.3 + (Number(dense[0] || 0) > 10 ? 0.3 : 0) ? 1 : 0;
    lines.push([label, ...dense, ...cats].join('\t'));
  }
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

/** A DLRM run's configuration (the built-in model module). */
export type DlrmTrainConfig = TrainConfig<DlrmConfig & ModelConfig>;

export function tinyConfig(data: string, over: Partial<DlrmTrainConfig> = {}): DlrmTrainConfig {
  return {
    ...DEFAULTS, modelModule: 'dlrm', preset: 'small', model: { ...DLRM_PRESETS.small, ...TINY_MODEL }, data,
    // The whole stream on every worker: W workers at batch b train what one worker at W*b does (the equivalence tests).
    servers: 1, workers: 1, batch: 8, steps: 3, evalSamples: 64, dataSplit: 'stream',
    lr: { emb: 0.2, dense: 0.2 }, optimizer: { emb: 'sgd', dense: 'sgd' }, ...over,
  };
}

export interface CheckpointContents {
  step: number;
  /** Per table name: key -> row. */
  tables: Map<string, Map<bigint, Float32Array>>;
  dense: Float32Array;
}

export async function readTrainingCheckpoint(dir: string, cfg: DlrmTrainConfig): Promise<CheckpointContents> {
  const loaded = await loadCheckpointFiles(await listShardFiles(dir));
  const tables = new Map<string, Map<bigint, Float32Array>>();
  for (const [name, t] of loaded.tables) {
    if (name === 'dense_params') continue; // pure-PS: the dense vector's range table; `dense` below holds the same values
    const rows = new Map<bigint, Float32Array>();
    t.keys.forEach((k, i) => rows.set(k, t.values.slice(i * t.dim, (i + 1) * t.dim)));
    tables.set(name, rows);
  }
  const spec = dlrmSpec(cfg.model);
  const sizes = denseSizes(spec);
  const dense = new Float32Array(sizes.reduce((a, p) => a + p.size, 0));
  for (const p of sizes) {
    const t = loaded.dense.get(p.name);
    if (!t) throw new Error(`checkpoint ${dir} has no dense.${p.name}`);
    dense.set(t.data, p.offset);
  }
  const step = Number(loaded.shards[0]?.metadata.step ?? -1);
  return { step, tables, dense };
}

/** Largest |a - b| over the dense vector and every row present in `a` (rows missing in b count as failures). */
export function maxDiff(a: CheckpointContents, b: CheckpointContents): number {
  let m = 0;
  for (let i = 0; i < a.dense.length; i++) m = Math.max(m, Math.abs(a.dense[i]! - b.dense[i]!));
  if (a.dense.length !== b.dense.length) return Infinity;
  for (const [name, rows] of a.tables) {
    const other = b.tables.get(name);
    if (!other) return Infinity;
    for (const [k, row] of rows) {
      const o = other.get(k);
      if (!o) return Infinity;
      for (let j = 0; j < row.length; j++) m = Math.max(m, Math.abs(row[j]! - o[j]!));
    }
  }
  return m;
}
