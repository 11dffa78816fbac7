// A server's table shards as one safetensors file, and loading any set of such files back.
// Tensor names (see docs/checkpoints.md):
//   <table>.keys             U64 [n]        row ids (< 2^48), sorted
//   <table>.values           F32 [n, dim]   the rows
//   <table>.slot.<slotName>  F32 [n, dim]   optimizer state, one tensor per slot
//   <table>.steps            U32 [n]        per-row update counts
//   dense.<name>             F32 <shape>    dense parameters
// Loading is independent of how many servers wrote the files: it returns every row of every file
// (duplicates from replicas resolved to the most-updated copy) and the caller keeps the rows it owns.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, SafetensorsError, type Tensor, type TypedArray } from './safetensors.ts';
import { TEMP_FILE } from './atomic-file.ts';
import { KeyIndex } from '../keys/key-index.ts';
import { firstKeyOutOfRange, keyWords } from '../keys/keys.ts';

export const SHARD_FORMAT = 'hybridps-shard';
export const SHARD_VERSION = '1';
const SHARD_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.\-]*$/;

/** What a shard file records about each table (in the `tables` metadata entry, as JSON). */
export interface TableMeta {
  name: string; id: number; dim: number; init: string; initScale: number; seed: string;
  optimizer: string; hyper: Record<string, number>; slots: string[]; rows: number;
}

/** Rows as a shard holds them: keys sorted, values and each optimizer slot n x dim, update counts. */
export interface ShardRows {
  keys: BigUint64Array;
  values: Float32Array;
  /** One array per slot, in slotNames order. */
  slots: Float32Array[];
  steps: Uint32Array;
}

/** What a shard is written from: a server's table store (TableStore, src/server/table-store.ts). */
export interface ShardTable {
  readonly config: { readonly name: string; readonly id: number; readonly dim: number; readonly init: string; readonly initScale: number; readonly seed: bigint; readonly optimizer: string };
  readonly dim: number;
  readonly slotNames: readonly string[];
  readonly hyper: Readonly<Record<string, number>>;
  exportRows(): ShardRows;
}

export interface ShardMeta {
  step: number;
  epoch?: number;
  /** Dense parameters to store beside the tables, as `dense.<name>`. */
  dense?: Record<string, { shape: number[]; data: Float32Array }>;
  /** More metadata (string values). */
  extra?: Record<string, string>;
}

export interface SavedShard {
  /** Paths of the files written (one per shard). */
  files: string[];
  rows: number;
  bytes: number;
  /** Rows per table. */
  tables: Record<string, number>;
}

/** One table's rows gathered from every file that has it. */
export interface LoadedTable {
  name: string;
  dim: number;
  keys: BigUint64Array;
  values: Float32Array;
  /** Slot arrays by slot name (empty for files without optimizer state). */
  slots: Record<string, Float32Array>;
  steps?: Uint32Array;
  /** The writer's description of the table, when the file came from hybridps. */
  meta?: TableMeta;
  files: string[];
  /** Rows that appeared in more than one file (replicas); the one with the most updates was kept. */
  duplicates: number;
}

export interface LoadedCheckpoint {
  tables: Map<string, LoadedTable>;
  dense: Map<string, { shape: number[]; data: Float32Array }>;
  shards: { path: string; metadata: Record<string, string> }[];
}

export function shardFileName(shardName: string): string {
  if (!SHARD_NAME.test(shardName)) throw new Error(`shard name ${JSON.stringify(shardName)} must be letters, digits, '_', '.', '-' and not start with '.'`);
  return `${shardName}.safetensors`;
}

/** The tensors of one table's rows under the checkpoint naming scheme. */
export function tableTensors(name: string, dim: number, rows: ShardRows, slotNames: readonly string[]): Record<string, Tensor> {
  const n = rows.keys.length;
  if (name === 'dense' || name.startsWith('dense.')) throw new Error(`table name '${name}' collides with the dense.<name> tensors`);
  if (slotNames.length !== rows.slots.length) throw new Error(`table ${name}: ${rows.slots.length} slot arrays for ${slotNames.length} slot names`);
  const t: Record<string, Tensor> = {
    [`${name}.keys`]: { dtype: 'U64', shape: [n], data: rows.keys },
    [`${name}.values`]: { dtype: 'F32', shape: [n, dim], data: rows.values },
    [`${name}.steps`]: { dtype: 'U32', shape: [n], data: rows.steps },
  };
  slotNames.forEach((s, k) => { t[`${name}.slot.${s}`] = { dtype: 'F32', shape: [n, dim], data: rows.slots[k]! }; });
  return t;
}

/**
 * Writes every table of `stores` (rows, slots, steps) and `meta.dense` into
 * `<dir>/<shardName>.safetensors`, atomically. The directory must exist.
 */
export async function saveTableStores(dir: string, shardName: string, stores: Iterable<ShardTable>, meta: ShardMeta): Promise<SavedShard> {
  if (!Number.isSafeInteger(meta.step) || meta.step < 0) throw new Error(`checkpoint step ${meta.step} is not a non-negative integer`);
  const path = join(dir, shardFileName(shardName));
  const tensors: Record<string, Tensor> = {};
  const tables: TableMeta[] = [];
  const counts: Record<string, number> = {};
  let rows = 0;
  for (const store of stores) {
    const c = store.config;
    if (Object.hasOwn(counts, c.name)) throw new Error(`two tables named '${c.name}' in one shard`);
    const data = store.exportRows();
    Object.assign(tensors, tableTensors(c.name, store.dim, data, store.slotNames));
    tables.push({
      name: c.name, id: c.id, dim: c.dim, init: c.init, initScale: c.initScale, seed: String(c.seed),
      optimizer: c.optimizer, hyper: { ...store.hyper }, slots: [...store.slotNames], rows: data.keys.length,
    });
    counts[c.name] = data.keys.length;
    rows += data.keys.length;
  }
  for (const [name, p] of Object.entries(meta.dense ?? {})) {
    if (!(p.data instanceof Float32Array)) throw new Error(`dense parameter ${name} must be a Float32Array`);
    tensors[`dense.${name}`] = { dtype: 'F32', shape: [...p.shape], data: p.data };
  }
  const metadata: Record<string, string> = {
    ...meta.extra,
    format: SHARD_FORMAT, version: SHARD_VERSION, shard: shardName, step: String(meta.step),
    tables: JSON.stringify(tables),
  };
  if (meta.epoch !== undefined) metadata.epoch = String(meta.epoch);
  await writeSafetensors(path, tensors, metadata);
  const bytes = (await stat(path)).size;
  return { files: [path], rows, bytes, tables: counts };
}

/** The shard files in a checkpoint directory (`*.safetensors`, temp files skipped), sorted. */
export async function listShardFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names.filter((n) => n.endsWith('.safetensors') && !TEMP_FILE.test(n)).sort().map((n) => join(dir, n));
}

/** Every table's rows (merged across files) from a set of shard files. */
export async function loadTableStores(paths: readonly string[]): Promise<Map<string, LoadedTable>> {
  return (await loadCheckpointFiles(paths)).tables;
}

interface Part {
  file: string; keys: BigUint64Array; values: Float32Array; dim: number;
  slots: Record<string, Float32Array>; steps?: Uint32Array; meta?: TableMeta;
}

/** Tables, dense parameters and per-file metadata from a set of shard files. */
export async function loadCheckpointFiles(paths: readonly string[]): Promise<LoadedCheckpoint> {
  const parts = new Map<string, Part[]>();
  const dense = new Map<string, { shape: number[]; data: Float32Array }>();
  const shards: LoadedCheckpoint['shards'] = [];
  for (const path of paths) {
    const file = await readSafetensors(path);
    shards.push({ path, metadata: { ...file.metadata } });
    for (const p of splitFile(path, file.tensors, file.metadata)) {
      if (p.kind === 'dense') {
        if (dense.has(p.name)) throw new SafetensorsError(`${path}: dense parameter '${p.name}' is also in another file`);
        dense.set(p.name, { shape: p.shape, data: p.data });
      } else {
        let list = parts.get(p.name);
        if (!list) parts.set(p.name, (list = []));
        list.push(p.part);
      }
    }
  }
  const tables = new Map<string, LoadedTable>();
  for (const [name, list] of parts) tables.set(name, merge(name, list));
  return { tables, dense, shards };
}

type Split = { kind: 'dense'; name: string; shape: number[]; data: Float32Array } | { kind: 'table'; name: string; part: Part };

/** Groups one file's tensors by table and converts them to the store's array types. */
function splitFile(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string>): Split[] {
  const fail = (why: string): never => { throw new SafetensorsError(`${path}: ${why}`); };
  let metas: TableMeta[] = [];
  if (metadata.tables !== undefined) {
    try {
      metas = JSON.parse(metadata.tables) as TableMeta[];
      if (!Array.isArray(metas)) throw new Error('not an array');
    } catch (e) {
      fail(`metadata 'tables' is not a JSON array: ${(e as Error).message}`);
    }
  }
  const groups = new Map<string, Record<string, Tensor>>();
  const out: Split[] = [];
  for (const [tname, t] of Object.entries(tensors)) {
    if (tname.startsWith('dense.')) {
      out.push({ kind: 'dense', name: tname.slice(6), shape: t.shape, data: toF32(t, fail, `tensor '${tname}'`) });
      continue;
    }
    let table: string, part: string;
    const slot = /^(.+)\.slot\.([^.]+)$/.exec(tname);
    const suffix = /^(.+)\.(keys|values|steps)$/.exec(tname);
    if (suffix) { table = suffix[1]!; part = suffix[2]!; }
    else if (slot) { table = slot[1]!; part = `slot.${slot[2]}`; }
    else {
      return fail(`tensor '${tname}' is not a hybridps checkpoint tensor (expected <table>.keys, <table>.values, <table>.steps, <table>.slot.<name> or dense.<name>)`);
    }
    let g = groups.get(table);
    if (!g) groups.set(table, (g = Object.create(null) as Record<string, Tensor>));
    g[part] = t;
  }
  for (const [name, g] of groups) {
    const where = `table '${name}'`;
    if (!g.keys) fail(`${where} has ${Object.keys(g).map((p) => `${name}.${p}`).join(', ')} but no ${name}.keys`);
    if (!g.values) fail(`${where} has no ${name}.values`);
    const keys = toKeys(g.keys!, fail, `tensor '${name}.keys'`);
    const n = keys.length;
    const { data: values, dim } = toRows(g.values!, n, fail, `tensor '${name}.values'`);
    const slots: Record<string, Float32Array> = {};
    for (const [p, t] of Object.entries(g)) {
      if (!p.startsWith('slot.')) continue;
      const s = toRows(t, n, fail, `tensor '${name}.${p}'`);
      if (s.dim !== dim) fail(`tensor '${name}.${p}' has width ${s.dim}, ${name}.values has ${dim}`);
      slots[p.slice(5)] = s.data;
    }
    const steps = g.steps ? toSteps(g.steps, n, fail, `tensor '${name}.steps'`) : undefined;
    const meta = metas.find((m) => m && m.name === name);
    if (meta && meta.dim !== dim) fail(`${where}: metadata says dim ${meta.dim}, ${name}.values has width ${dim}`);
    out.push({ kind: 'table', name, part: { file: path, keys, values, dim, slots, steps, meta } });
  }
  return out;
}

type Fail = (why: string) => never;

function toKeys(t: Tensor, fail: Fail, where: string): BigUint64Array {
  if (t.shape.length !== 1) fail(`${where} must be 1-D [n], has shape [${t.shape.join(', ')}]`);
  let keys: BigUint64Array;
  switch (t.dtype) {
    case 'U64': keys = t.data as BigUint64Array; break;
    case 'I64': keys = new BigUint64Array(t.data.buffer, t.data.byteOffset, t.data.length); break;
    case 'U32': case 'I32': {
      const src = t.data as Uint32Array | Int32Array;
      for (let i = 0; i < src.length; i++) if (src[i]! < 0) fail(`${where}: key ${src[i]} at position ${i} is negative`);
      keys = new BigUint64Array(src.length);
      const w = keyWords(keys);
      for (let i = 0; i < src.length; i++) w[2 * i] = src[i]!;
      break;
    }
    default: return fail(`${where} has dtype ${t.dtype}; keys must be U64 (or I64/U32/I32), e.g. numpy .astype(np.uint64)`);
  }
  const i = firstKeyOutOfRange(keys);
  if (i >= 0) fail(`${where}: key ${t.dtype === 'I64' ? (t.data as BigInt64Array)[i] : keys[i]} at position ${i} is not in [0, 2^48)`);
  return keys;
}

function toF32(t: Tensor, fail: Fail, where: string): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  if (t.dtype === 'F64') return Float32Array.from(t.data as Float64Array);
  return fail(`${where} has dtype ${t.dtype}; expected F32 (or F64), e.g. numpy .astype(np.float32)`);
}

function toRows(t: Tensor, n: number, fail: Fail, where: string): { data: Float32Array; dim: number } {
  const data = toF32(t, fail, where);
  if (t.shape.length === 1 && t.shape[0] === n) return { data, dim: 1 };
  if (t.shape.length !== 2 || t.shape[0] !== n) fail(`${where} must have shape [${n}, dim] to match the keys, has [${t.shape.join(', ')}]`);
  if (t.shape[1]! < 1) fail(`${where}: row width must be at least 1`);
  return { data, dim: t.shape[1]! };
}

function toSteps(t: Tensor, n: number, fail: Fail, where: string): Uint32Array {
  if (t.shape.length !== 1 || t.shape[0] !== n) fail(`${where} must have shape [${n}], has [${t.shape.join(', ')}]`);
  if (t.dtype === 'U32') return t.data as Uint32Array;
  if (!['I32', 'U64', 'I64'].includes(t.dtype)) fail(`${where} has dtype ${t.dtype}; expected U32 (or I32/U64/I64)`);
  const out = new Uint32Array(n);
  const src = t.data as Int32Array | BigInt64Array | BigUint64Array;
  for (let i = 0; i < n; i++) {
    const v = Number(src[i]!);
    if (!(v >= 0 && v <= 0xffff_ffff)) fail(`${where}: step ${src[i]} at position ${i} is not in [0, 2^32)`);
    out[i] = v;
  }
  return out;
}

/** Concatenates a table's parts; keys present in several parts keep the copy with the most updates. */
function merge(name: string, list: Part[]): LoadedTable {
  const first = list[0]!;
  const slotNames = Object.keys(first.slots).sort();
  for (const p of list) {
    const fail = (why: string): never => { throw new SafetensorsError(`table '${name}': ${why}`); };
    if (p.dim !== first.dim) fail(`${p.file} has width ${p.dim}, ${first.file} has ${first.dim}`);
    const s = Object.keys(p.slots).sort();
    if (s.join(',') !== slotNames.join(',')) fail(`${p.file} has slots [${s.join(', ')}], ${first.file} has [${slotNames.join(', ')}]`);
    if (!!p.steps !== !!first.steps) fail(`${p.file} ${p.steps ? 'has' : 'lacks'} ${name}.steps but ${first.file} ${first.steps ? 'has' : 'lacks'} it`);
  }
  const dim = first.dim;
  const total = list.reduce((a, p) => a + p.keys.length, 0);
  let keys: BigUint64Array, values: Float32Array, steps: Uint32Array | undefined;
  let slots: Record<string, Float32Array>;
  if (list.length === 1) {
    ({ keys, values, slots, steps } = first);
  } else {
    keys = new BigUint64Array(total);
    values = new Float32Array(total * dim);
    steps = first.steps ? new Uint32Array(total) : undefined;
    slots = Object.fromEntries(slotNames.map((s) => [s, new Float32Array(total * dim)]));
    let at = 0;
    for (const p of list) {
      keys.set(p.keys, at);
      values.set(p.values, at * dim);
      if (steps) steps.set(p.steps!, at);
      for (const s of slotNames) slots[s]!.set(p.slots[s]!, at * dim);
      at += p.keys.length;
    }
  }
  // Duplicates: replicas of a row written by several servers, or a foreign file's repeats.
  const w = keyWords(keys);
  const index = new KeyIndex(total);
  const pick = new Uint32Array(total);
  let unique = 0;
  for (let g = 0; g < total; g++) {
    const u = index.lookupOrInsert(w[2 * g]!, w[2 * g + 1]!, unique);
    if (u < 0) pick[unique++] = g;
    else if (steps && steps[g]! > steps[pick[u]!]!) pick[u] = g;
  }
  const duplicates = total - unique;
  if (duplicates > 0) {
    const gather = <T extends TypedArray>(src: T, width: number, make: (n: number) => T): T => {
      const out = make(unique * width);
      for (let u = 0; u < unique; u++) {
        const g = pick[u]!;
        for (let j = 0; j < width; j++) out[u * width + j] = src[g * width + j]!;
      }
      return out;
    };
    keys = gather(keys, 1, (n) => new BigUint64Array(n));
    values = gather(values, dim, (n) => new Float32Array(n));
    if (steps) steps = gather(steps, 1, (n) => new Uint32Array(n));
    slots = Object.fromEntries(Object.entries(slots).map(([s, a]) => [s, gather(a, dim, (n) => new Float32Array(n))]));
  }
  return {
    name, dim, keys, values, slots, steps, meta: list.find((p) => p.meta)?.meta,
    files: list.map((p) => p.file), duplicates,
  };
}
