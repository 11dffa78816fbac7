// Command-line flags (and a sample directory's `sample.json` defaults) -> a validated training
// job. The sample names its model module ("module": a built-in name or a file in the sample
// directory), which is loaded here to start from its defaults and check the configuration. Without --data the job names the default synthetic set (gen-data's planted model), which
// the launch generates as a step of its own: parsing flags writes nothing.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../util/package-files.ts';
import { DEFAULTS, parseConsistency, parsePerPart, validateConfig, type TrainConfig, type Mode } from '../train/config.ts';
import { loadModelModule, resolveModelConfig, resolveModelRef } from '../train/model-loader.ts';
import type { TrainJob } from '../launch/train-job.ts';
import { resolveDataFiles } from '../data/data-files.ts';
import type { OptimizerName } from '../model/model-spec.ts';
import { parseRowFormat, type RowFormat } from '../wire/row-format.ts';

export interface TrainFlags {
  servers?: number; workers?: number; replicas?: number; mode?: string; consistency?: string;
  batch?: number; steps?: number; epochs?: number; lr?: string; optimizer?: string; data?: string;
  evalEvery?: number; evalSamples?: number; checkpointDir?: string; checkpointEvery?: number; resume?: string; partialDense?: boolean;
  preset?: string; seed?: number; f16?: boolean; wireRows?: string; pipeline?: boolean; cacheRows?: number; cacheRefresh?: number; hotRows?: number; rowsPerTable?: number; samples?: number; badLines?: string; dataSplit?: string;
  /** JSON overrides of the model shape (tests use tiny models). */
  model?: string;
  json?: boolean;
}

export interface SampleFile {
  description?: string;
  /** The model module: a built-in name ("dlrm") or a file relative to the sample directory ("./model.ts"). Default dlrm. */
  module?: string;
  /** One of the module's presets to start from (default: its defaults). */
  preset?: string;
  /** Fields of the module's configuration to override. */
  model?: Record<string, unknown>;
  servers?: number; workers?: number; mode?: Mode; consistency?: string; batch?: number; steps?: number; epochs?: number;
  lr?: string | number; optimizer?: string; evalEvery?: number; evalSamples?: number;
  /** The synthetic data set used when --data is not given. */
  synthetic?: { samples: number; seed: number };
}

/** A sample directory's sample.json, with `dir` (absolute) where its module path is relative to. */
export type Sample = SampleFile & { dir: string };

/**
 * A sample directory's sample.json. A relative `dir` that is not one here is looked for in the
 * package too, so `launch samples/dlrm` works from any directory (on a GPU box, outside the
 * unpacked bundle that carries the samples).
 */
export function readSample(dir: string, from = process.cwd()): Sample {
  let at = resolve(from, dir);
  const packaged = isAbsolute(dir) ? '' : join(PACKAGE_ROOT, dir);
  if (!existsSync(join(at, 'sample.json')) && packaged && existsSync(join(packaged, 'sample.json'))) at = packaged;
  const path = join(at, 'sample.json');
  if (!existsSync(path)) {
    const ours = existsSync(join(PACKAGE_ROOT, 'samples')) ? readdirSync(join(PACKAGE_ROOT, 'samples')).filter((d) => existsSync(join(PACKAGE_ROOT, 'samples', d, 'sample.json'))) : [];
    throw new Error(`${dir} is not a sample directory (no sample.json in ${at}); the package's samples: ${ours.map((d) => `samples/${d}`).join(', ') || 'none found'}`);
  }
  let s: SampleFile;
  try { s = JSON.parse(readFileSync(path, 'utf8')) as SampleFile; } catch (e) { throw new Error(`${path}: ${(e as Error).message}`); }
  return { ...s, dir: at };
}

/** The synthetic set a sample trains on without --data: its size and seed, and its model's rows per table. */
export async function sampleDataDefaults(sample: Sample): Promise<{ samples: number; seed: number; rowsPerTable: number }> {
  const mod = await loadModelModule(resolveModelRef(sample.module ?? DEFAULTS.modelModule, sample.dir));
  const model = resolveModelConfig(mod, sample.preset, sample.model);
  return { samples: sample.synthetic?.samples ?? 200_000, seed: sample.synthetic?.seed ?? 7, rowsPerTable: model.rowsPerTable };
}

export async function trainJobFromFlags(f: TrainFlags, sample: Sample = { dir: process.cwd() }): Promise<TrainJob> {
  const modelModule = resolveModelRef(sample.module ?? DEFAULTS.modelModule, sample.dir);
  const mod = await loadModelModule(modelModule);
  const preset = f.preset ?? sample.preset;
  let cli: Record<string, unknown> = {};
  try { cli = f.model ? JSON.parse(f.model) as Record<string, unknown> : {}; } catch (e) { throw new Error(`--model ${f.model}: not JSON (${(e as Error).message})`); }
  const overrides: Record<string, unknown> = { ...sample.model, ...cli };
  if (f.rowsPerTable !== undefined) overrides.rowsPerTable = f.rowsPerTable;
  const model = resolveModelConfig(mod, preset, overrides);
  const lrSpec = f.lr ?? (sample.lr === undefined ? undefined : String(sample.lr));
  const optSpec = f.optimizer ?? sample.optimizer;
  const synth = { samples: f.samples ?? sample.synthetic?.samples ?? 200_000, seed: sample.synthetic?.seed ?? 7 };
  const cfg: Omit<TrainConfig, 'data'> = {
    ...DEFAULTS,
    modelModule, preset, model,
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
    wireRows: wireRowsFlag(f),
    pipeline: f.pipeline !== false,
    cacheRows: f.cacheRows ?? DEFAULTS.cacheRows,
    cacheRefresh: f.cacheRefresh ?? DEFAULTS.cacheRefresh,
    hotRows: f.hotRows ?? DEFAULTS.hotRows,
    onBadLine: f.badLines === 'fatal' ? 'fatal' : 'skip',
    dataSplit: (f.dataSplit ?? DEFAULTS.dataSplit) as TrainConfig['dataSplit'],
  };
  if (f.badLines !== undefined && f.badLines !== 'skip' && f.badLines !== 'fatal') throw new Error(`--bad-lines ${f.badLines}: skip or fatal`);
  // Everything is validated here, so a typo never costs a data generation.
  validateConfig({ ...cfg, data: f.data ?? 'pending' });
  if (!f.data) return { config: cfg, data: { synthetic: { ...synth, rowsPerTable: model.rowsPerTable } } };
  // Each entry absolute (the workers may run elsewhere); globs and directories stay as given, for
  // the workers to expand in the same order. A name that matches nothing fails here.
  resolveDataFiles(f.data);
  return { config: cfg, data: { file: f.data.split(',').map((s) => s.trim()).filter(Boolean).map((s) => resolve(s)).join(',') } };
}

/** --wire-rows f32|f16|bf16, with --f16 its older spelling of f16 (both given: they must agree). */
function wireRowsFlag(f: TrainFlags): RowFormat {
  const rows = f.wireRows === undefined ? undefined : parseRowFormat(f.wireRows, '--wire-rows');
  if (f.f16 && rows !== undefined && rows !== 'f16') throw new Error(`--f16 means --wire-rows f16, but --wire-rows ${rows} was given too; leave one out`);
  return rows ?? (f.f16 ? 'f16' : 'f32');
}
