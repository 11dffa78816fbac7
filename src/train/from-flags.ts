// Command-line flags (and a sample directory's `sample.json` defaults) -> TrainConfig, and the
// default data set: when no --data is given, a synthetic Criteo-layout file from `gen-data`'s
// planted model, generated once and cached under runs/data/.
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULTS, parseConsistency, parsePerPart, resolveModel, validateConfig, type TrainConfig, type Mode } from './config.ts';
import type { DlrmConfig } from '../model/dlrm.ts';
import type { OptimizerName } from '../model/model-spec.ts';

export interface TrainFlags {
  servers?: number; workers?: number; replicas?: number; mode?: string; consistency?: string;
  batch?: number; steps?: number; epochs?: number; lr?: string; optimizer?: string; data?: string;
  evalEvery?: number; evalSamples?: number; checkpointDir?: string; checkpointEvery?: number; resume?: string;
  preset?: string; seed?: number; f16?: boolean; rowsPerTable?: number; samples?: number; badLines?: string;
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

export async function trainConfigFromFlags(f: TrainFlags, sample: SampleFile = {}, log?: (s: string) => void): Promise<TrainConfig> {
  const preset = f.preset ?? sample.preset ?? DEFAULTS.preset;
  const overrides: Partial<DlrmConfig> = { ...sample.model, ...(f.model ? JSON.parse(f.model) : {}) };
  if (f.rowsPerTable !== undefined) overrides.rowsPerTable = f.rowsPerTable;
  const model = resolveModel(preset, overrides);
  const lrSpec = f.lr ?? (sample.lr === undefined ? undefined : String(sample.lr));
  const optSpec = f.optimizer ?? sample.optimizer;
  const synth = { samples: f.samples ?? sample.synthetic?.samples ?? 200_000, seed: sample.synthetic?.seed ?? 7 };
  const cfg: TrainConfig = {
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
    data: '',
    evalSteps: f.evalEvery ?? sample.evalEvery ?? DEFAULTS.evalSteps,
    evalSamples: f.evalSamples ?? sample.evalSamples ?? DEFAULTS.evalSamples,
    checkpointDir: f.checkpointDir ? resolve(f.checkpointDir) : undefined,
    checkpointEvery: f.checkpointEvery ?? DEFAULTS.checkpointEvery,
    resume: f.resume ? resolve(f.resume) : undefined,
    seed: f.seed ?? DEFAULTS.seed,
    f16: !!f.f16,
    onBadLine: f.badLines === 'fatal' ? 'fatal' : 'skip',
  };
  if (f.badLines !== undefined && f.badLines !== 'skip' && f.badLines !== 'fatal') throw new Error(`--bad-lines ${f.badLines}: skip or fatal`);
  // Validate everything but the data first, so a typo does not cost a data generation.
  validateConfig({ ...cfg, data: f.data ?? 'pending' });
  cfg.data = f.data ? resolve(f.data) : await ensureSyntheticData({ ...synth, rowsPerTable: model.rowsPerTable, log });
  if (!existsSync(cfg.data)) throw new Error(`--data ${f.data}: no such file`);
  return cfg;
}
