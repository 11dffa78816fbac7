// A training job as the command line asks for it: a validated configuration and where its data
// comes from, a file or the default synthetic set. Generating that set (once, cached under
// runs/data/) is an explicit step of the launch, taken before any process starts.
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TrainConfig } from '../train/config.ts';

export type DataSource =
  | { file: string }
  | { synthetic: { samples: number; seed: number; rowsPerTable: number } };

export interface TrainJob { config: Omit<TrainConfig, 'data'>; data: DataSource }

/** The cached synthetic data file for these settings (generated if missing). */
export async function ensureSyntheticData(o: { samples: number; seed: number; rowsPerTable: number; dir?: string; log?: (s: string) => void }): Promise<string> {
  const dir = resolve(o.dir ?? join('runs', 'data'));
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `synthetic-n${o.samples}-s${o.seed}-r${o.rowsPerTable}.tsv`);
  if (existsSync(path) && existsSync(`${path}.meta.json`)) return path;
  o.log?.(`generating synthetic data: ${o.samples} samples -> ${path} (once; later runs reuse it)`);
  const { generateSynthetic } = await import('../data/synthetic.ts');
  await generateSynthetic({ out: path, samples: o.samples, seed: o.seed, rowsPerTable: o.rowsPerTable });
  return path;
}

/** The job's configuration with its data file in place (generating the synthetic set if needed). */
export async function prepareTrainData(job: TrainJob, log?: (s: string) => void): Promise<TrainConfig> {
  const data = 'file' in job.data ? job.data.file : await ensureSyntheticData({ ...job.data.synthetic, log });
  return { ...job.config, data };
}

/** Reads the sidecar gen-data writes next to a synthetic file (planted model's AUC), if any. */
export function readDataMeta(path: string): { plantedAuc?: number; plantedLogloss?: number; samples?: number; rowsPerTable?: number } | null {
  const meta = `${path}.meta.json`;
  if (!existsSync(meta)) return null;
  try { return JSON.parse(readFileSync(meta, 'utf8')); } catch { return null; }
}
