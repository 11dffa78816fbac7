// A training checkpoint: `<root>/step-<N>/` with one shard per server (the embedding tables, and
// the dense vector in pure-PS mode, with optimizer slots), `dense.safetensors` (the dense
// parameters by name, `dense.<name>` in their declared shapes) and `manifest.json` (model config,
// step, cluster shape, files); `<root>/latest` names the newest step directory. Every file is
// written atomically and the manifest last, so a directory with a manifest is complete.
import { stat, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeSafetensors, readSafetensors, writeManifest, readManifest, writeBytesAtomic, listShardFiles, MANIFEST_FILE, type Tensor } from '../checkpoint/index.ts';
import type { PSClient } from '../client/ps-client.ts';
import type { TrainConfig } from './config.ts';
import { checkDenseTensors, DenseFileError } from './dense-file.ts';
import { checkCursor, type DataCursor } from '../data/schedule.ts';

export const DENSE_FILE = 'dense.safetensors';
export const LATEST_FILE = 'latest';

export interface DenseEntry { name: string; offset: number; size: number; shape?: number[] }

/** The checkpoint directory `path` names: itself if it has a manifest, else the one `latest` names. */
export async function resolveCheckpoint(path: string): Promise<string> {
  const abs = resolve(path);
  if (await exists(join(abs, MANIFEST_FILE))) return abs;
  let latest: string;
  try { latest = (await readFile(join(abs, LATEST_FILE), 'utf8')).trim(); } catch {
    // Files written by another tool (PyTorch, numpy) need no manifest: they start at step 0.
    if ((await listShardFiles(abs).catch(() => [])).length > 0) return abs;
    throw new Error(`--resume ${path}: no ${MANIFEST_FILE}, no ${LATEST_FILE} file and no .safetensors files there (give a step-N checkpoint directory or the checkpoint root)`);
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(latest)) throw new Error(`${join(abs, LATEST_FILE)} names ${JSON.stringify(latest)}, not a directory name`);
  const dir = join(abs, latest);
  if (!(await exists(join(dir, MANIFEST_FILE)))) throw new Error(`${join(abs, LATEST_FILE)} points to ${latest}, which has no ${MANIFEST_FILE} (incomplete checkpoint?)`);
  return dir;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

export interface DenseOptimizerState { slots: Record<string, Float32Array>; adamStep: number }

export async function saveTrainingCheckpoint(o: {
  client: PSClient; cfg: TrainConfig; modelName: string; step: number; dense: Float32Array; layout: DenseEntry[]; workers: number;
  /** Hybrid mode: the workers' local dense optimizer state (pure-PS keeps it in the server shards). */
  optimizer?: DenseOptimizerState;
  /** Where the training data stands after `step` ('bytes' split): what a resume onto any worker count continues from. */
  data?: DataCursor;
}): Promise<string> {
  const root = resolve(o.cfg.checkpointDir!);
  const name = `step-${o.step}`;
  const dir = join(root, name);
  const serverFiles = await o.client.checkpoint(dir, o.step); // the servers create `dir`
  const tensors: Record<string, Tensor> = {};
  for (const p of o.layout) {
    tensors[`dense.${p.name}`] = { dtype: 'F32', shape: p.shape ?? [p.size], data: o.dense.slice(p.offset, p.offset + p.size) };
    for (const [slot, flat] of Object.entries(o.optimizer?.slots ?? {})) {
      tensors[`dense.${p.name}.slot.${slot}`] = { dtype: 'F32', shape: p.shape ?? [p.size], data: flat.slice(p.offset, p.offset + p.size) };
    }
  }
  const densePath = join(dir, DENSE_FILE);
  await writeSafetensors(densePath, tensors, {
    format: 'hybridps-dense', step: String(o.step), ...(o.optimizer ? { dense_optimizer: o.cfg.optimizer.dense, dense_adam_step: String(o.optimizer.adamStep) } : {}),
  });
  const files = [];
  for (const f of [...serverFiles, densePath]) {
    files.push({ path: f, shard: f === densePath ? 'dense' : f.replace(/^.*\//, '').replace(/\.safetensors$/, ''), bytes: (await stat(f)).size, rows: 0 });
  }
  const c = o.cfg;
  await writeManifest(dir, {
    step: o.step,
    model: {
      kind: o.modelName, preset: c.preset, config: c.model, mode: c.mode, consistency: c.consistency, optimizer: c.optimizer,
      lr: c.lr, seed: c.seed, batch: c.batch, dense: o.layout.map(({ name, shape, size }) => ({ name, shape: shape ?? [size] })),
      ...(o.data ? { data: o.data } : {}),
    },
    cluster: { servers: c.servers, workers: o.workers, replicas: c.replicas },
    files,
  });
  await writeBytesAtomic(join(root, LATEST_FILE), `${name}\n`);
  return dir;
}

export interface LoadedTraining {
  step: number;
  /** Flat dense vector in the runner's layout, or null when the checkpoint has no dense parameters. */
  dense: Float32Array | null;
  /** The dense vector is in the server shards too (written in pure-PS mode, with its optimizer state). */
  denseOnServers: boolean;
  /** The local dense optimizer's state, when the checkpoint has it for this run's dense optimizer. */
  optimizer: DenseOptimizerState | null;
  /** Dense parameters the file did not have, initialised fresh (only with `partialDense`). */
  fresh: string[];
  /** The data cursor the run wrote (absent: an older checkpoint, or another tool's), and its worker count. */
  data?: DataCursor;
  workers?: number; batch?: number;
}

/**
 * Reads the step and the dense parameters. A checkpoint written by another tool needs only the
 * server shard files and, optionally, `dense.safetensors` (see docs/checkpoints.md); the model's
 * shapes must match.
 */
export async function loadTrainingCheckpoint(dir: string, layout: DenseEntry[], cfg: TrainConfig, initial: Float32Array, modelName: string): Promise<LoadedTraining> {
  const m = (await exists(join(dir, MANIFEST_FILE))) ? await readManifest(dir) : { step: 0, model: null, cluster: undefined };
  const model = (m.model ?? {}) as { kind?: string; config?: Record<string, unknown>; mode?: string; data?: unknown; batch?: unknown };
  const data = model.data === undefined ? undefined : checkCursor(model.data);
  if (typeof data === 'string') throw new Error(`checkpoint ${dir}: model.data (where the training data stood) is malformed: ${data}; remove the field to resume from the step alone`);
  if (typeof model.kind === 'string' && model.kind !== modelName) {
    throw new Error(`checkpoint ${dir} was written by the ${model.kind} model; this run trains ${modelName}`);
  }
  if (model.config) {
    // Every field of the model's configuration shapes its tables or its dense parameters.
    for (const k of new Set([...Object.keys(model.config), ...Object.keys(cfg.model)])) {
      if (JSON.stringify(model.config[k]) !== JSON.stringify(cfg.model[k])) {
        throw new Error(`checkpoint ${dir} was written for a model with ${k} = ${JSON.stringify(model.config[k])}; this run has ${JSON.stringify(cfg.model[k])}`);
      }
    }
  }
  let dense: Float32Array | null = null;
  let optimizer: DenseOptimizerState | null = null;
  let fresh: string[] = [];
  const densePath = join(dir, DENSE_FILE);
  if (await exists(densePath)) {
    const f = await readSafetensors(densePath);
    fresh = checkDenseTensors(densePath, f.tensors, layout, cfg.partialDense);
    const total = layout.reduce((s, p) => s + p.size, 0);
    // Optimizer slots only carry over to the same optimizer (a different one starts fresh), and
    // only when every parameter has them (a partial load starts the optimizer fresh).
    if (f.metadata.dense_optimizer === cfg.optimizer.dense && fresh.length === 0) {
      const slotNames = new Set(Object.keys(f.tensors).map((n) => /\.slot\.([^.]+)$/.exec(n)?.[1]).filter((x): x is string => !!x));
      optimizer = { slots: {}, adamStep: Number(f.metadata.dense_adam_step ?? 0) };
      for (const slot of slotNames) {
        const flat = new Float32Array(total);
        for (const p of layout) {
          const t = f.tensors[`dense.${p.name}.slot.${slot}`];
          if (!t) throw new DenseFileError('dense-missing', `${densePath}: dense.${p.name}.slot.${slot} is missing (the file has ${slot} state for other parameters)`);
          flat.set(Float32Array.from(t.data as ArrayLike<number>), p.offset);
        }
        optimizer.slots[slot] = flat;
      }
    }
    dense = initial.slice(); // parameters the file does not have (a --partial-dense load) keep their initial values
    for (const p of layout) {
      const t = f.tensors[`dense.${p.name}`];
      if (t) dense.set(Float32Array.from(t.data as ArrayLike<number>), p.offset);
    }
  }
  return { step: m.step, dense, denseOnServers: model.mode === 'pure-ps' && cfg.mode === 'pure-ps', optimizer, fresh, data, workers: m.cluster?.workers, batch: Number.isSafeInteger(model.batch) ? model.batch as number : undefined };
}
