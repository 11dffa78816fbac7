// Command-line flags (and a sample directory's `sample.json` defaults) -> a validated training
// job. Without --data the job names the default synthetic set (gen-data's planted model), which
// the launch generates as a step of its own: parsing flags writes nothing.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULTS, parseConsistency, parsePerPart, resolveModel, validateConfig, type TrainConfig, type Mode } from '../train/config.ts';
import type { TrainJob } from '../launch/train-job.ts';
import type { DlrmConfig } from '../model/dlrm.ts';
import type { OptimizerName } from '../model/model-spec.ts';

export interface TrainFlags {
  servers?: number; workers?: number; replicas?: number; mode?: string; consistency?: string;
  batch?: number; steps?: number; epochs?: number; lr?: string; optimizer?: string; data?: string;
  evalEvery?: number; evalSamples?: number; checkpointDir?: string; checkpointEvery?: number; resume?: string; partialDense?: boolean;
  preset?: string; seed?: number; f16?: boolean; pipeline?: boolean; rowsPerTable?: number; samples?: number; badLines?: string;
  /** JSON overrides of the model shape (tests use tiny models). */
  model?: string;
  json?: boolean;
}

export interface SampleFile {
  description?: string;
  preset?: string;
  model?: Partial<DlrmConfig>;
  servers?: number; workers?: number; mode?: Mode; consistency?: string; batch?: number; steps?: number; epochs?: number;
  lr?: string | number; optimizer?: string; evalEvery?: number; evalSamples?: number;
  /** The synthetic data set used when --data is not given. */
  synthetic?: { samples: number; seed: number };
}

export function readSample(dir: string): SampleFile {
  const path = join(dir, 'sample.json');
  if (!existsSync(path)) throw new Error(`${dir} is not a sample directory (no sample.json); try samples/dlrm`);
  try { return JSON.parse(readFileSync(path, 'utf8')) as SampleFile; } catch (e) { throw new Error(`${path}: ${(e as Error).message}`); }
}

export function trainJobFromFlags(f: TrainFlags, sample: SampleFile = {}): TrainJob {
  const preset = f.preset ?? sample.preset ?? DEFAULTS.preset;
  const overrides: Partial<DlrmConfig> = { ...sample.model, ...(f.model ? JSON.parse(f.model) : {}) };
  if (f.rowsPerTable !== undefined) overrides.rowsPerTable = f.rowsPerTable;
  const model = resolveModel(preset, overrides);
  const lrSpec = f.lr ?? (sample.lr === undefined ? undefined : String(sample.lr));
  const optSpec = f.optimizer ?? sample.optimizer;
  const synth = { samples: f.samples ?? sample.synthetic?.samples ?? 200_000, seed: sample.synthetic?.seed ?? 7 };
  const cfg: Omit<TrainConfig, 'data'> = {
    ...DEFAULTS,
    preset, model,
    servers: f.servers ?? sample.servers ?? DEFAULTS.servers,
    workers: f.workers ?? sample.workers ?? DEFAULTS.workers,
    replicas: f.replicas ?? DEFAULTS.replicas,
    mode: (f.mode ?? sample.mode ?? DEFAULTS.mode) as Mode,
    consistency: parseConsistency(f.consistency ?? sample.consistency ?? 'bsp'),
    batch: f.batch ?? sample.batch ?? DEFAULTS.batch,
    steps: f.steps ?? sample.steps ?? DEFAULTS.steps,
    epochs: f.epochs ?? sample.epochs ?? DEFAULTS.epochs,
    lr: lrSpec === undefined ? { ...DEFAULTS.lr } : parsePerPart(lrSpec, Number, DEFAULTS.lr, '--lr'),
    optimizer: optSpec === undefined ? { ...DEFAULTS.optimizer }
      : parsePerPart(optSpec, (v) => v as OptimizerName, DEFAULTS.optimizer as { emb: OptimizerName; dense: OptimizerName }, '--optimizer') as TrainConfig['optimizer'],
    evalSteps: f.evalEvery ?? sample.evalEvery ?? DEFAULTS.evalSteps,
    evalSamples: f.evalSamples ?? sample.evalSamples ?? DEFAULTS.evalSamples,
    checkpointDir: f.checkpointDir ? resolve(f.checkpointDir) : undefined,
    checkpointEvery: f.checkpointEvery ?? DEFAULTS.checkpointEvery,
    resume: f.resume ? resolve(f.resume) : undefined,
    partialDense: !!f.partialDense,
    seed: f.seed ?? DEFAULTS.seed,
    f16: !!f.f16,
    pipeline: f.pipeline !== false,
    onBadLine: f.badLines === 'fatal' ? 'fatal' : 'skip',
  };
  if (f.badLines !== undefined && f.badLines !== 'skip' && f.badLines !== 'fatal') throw new Error(`--bad-lines ${f.badLines}: skip or fatal`);
  // Everything is validated here, so a typo never costs a data generation.
  validateConfig({ ...cfg, data: f.data ?? 'pending' });
  if (!f.data) return { config: cfg, data: { synthetic: { ...synth, rowsPerTable: model.rowsPerTable } } };
  if (!existsSync(f.data)) throw new Error(`--data ${f.data}: no such file`);
  return { config: cfg, data: { file: resolve(f.data) } };
}
