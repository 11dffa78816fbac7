// What a model is to the training pipeline: a *model module* (a sample's own TypeScript or
// JavaScript file, loaded at run time, or a built-in one) exports `model`, a ModelModule: its
// name, its default configuration (and named presets), a check of a configuration, the spec
// factory (the model as data for ModelRunner) and the mapping from a batch of data records to
// the model's inputs. `launch`, `compare`, `--resume`, the TF_CONFIG worker and the summary only
// ever go through this interface, so a new model needs no change in src/ (docs/models.md).
import type { ConsistencyName, ModelSpec, OptimizerName } from './model-spec.ts';
import type { TableBatch } from './batch-prep.ts';

/**
 * A model's configuration: JSON data (it travels to every worker and into checkpoint manifests).
 * `rowsPerTable` is the one field the pipeline reads: categorical ids are taken mod it.
 */
export interface ModelConfig { rowsPerTable: number; [field: string]: unknown }

/**
 * B data records in the Criteo layout, as the reader fills them: `labels[b]`, the dense features
 * `dense[b * denseWidth + j]` (log-transformed counts) and the categorical ids
 * `cats[b * catWidth + t]`, already taken mod rowsPerTable.
 */
export interface RecordBatch {
  size: number;
  labels: Float32Array;
  dense: Float32Array;
  cats: Uint32Array;
  denseWidth: number;
  catWidth: number;
}

/** The model's inputs for one batch: the spec's per-step inputs and the ids per table, in spec order. */
export interface ModelBatch { B: number; inputs: Record<string, Float32Array>; tables: TableBatch[] }

/** What the run decides for the model's tables (its sparse optimizer and consistency). */
export interface ModelSpecOptions {
  optimizer: OptimizerName;
  hyper: Record<string, number>;
  consistency: ConsistencyName;
  staleness: number;
}

export interface ModelModule<C extends ModelConfig = ModelConfig> {
  /** Short name, written into checkpoint manifests and summaries ("dlrm", "custom-fm"). */
  name: string;
  /** The configuration a run starts from (sample.json's "model" and --model override fields of it). */
  defaults: C;
  /** Named starting configurations instead of `defaults` (`--preset NAME`). */
  presets?: Record<string, C>;
  /** Everything wrong with `config`, one message each (empty: fine). */
  validate(config: C): string[];
  spec(config: C, o: ModelSpecOptions): ModelSpec;
  toBatch(records: RecordBatch, config: C): ModelBatch;
}

/** Types a model module's export (an identity function: `export const model = defineModel({...})`). */
export function defineModel<C extends ModelConfig>(m: ModelModule<C>): ModelModule<C> {
  return m;
}

/** Column `t` of the categorical ids as one table's batch (one id per sample). */
export function categoricalColumn(r: RecordBatch, t: number): TableBatch {
  const ids = new Float64Array(r.size);
  for (let i = 0; i < r.size; i++) ids[i] = r.cats[i * r.catWidth + t]!;
  return { ids };
}
