// manifest.json: what a checkpoint directory holds (model config, training step, cluster shape,
// the shard files with their sizes). Written atomically after every shard file is in place, so a
// directory with a manifest is a complete checkpoint; reading checks each listed file is there
// with the recorded size.
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { writeBytesAtomic } from './atomic-file.ts';
import { listShardFiles } from './table-shards.ts';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'hybridps-checkpoint';
export const MANIFEST_VERSION = 1;

export interface ManifestFile {
  /** File name inside the checkpoint directory. */
  path: string;
  /** Who wrote it (server node id). */
  shard: string;
  bytes: number;
  rows: number;
  /** Rows per table. */
  tables?: Record<string, number>;
}

export interface ClusterShape {
  servers: number;
  workers: number;
  replicas?: number;
  epoch?: number;
}

export interface CheckpointManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  step: number;
  createdAt: string;
  /** The model configuration (tables, dense parameters, ...) as JSON. */
  model: unknown;
  cluster: ClusterShape;
  files: ManifestFile[];
}

export type ManifestInput = Omit<CheckpointManifest, 'format' | 'version' | 'createdAt'> & { createdAt?: string };

export class ManifestError extends Error {
  override name = 'ManifestError';
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** A file name inside the directory: no separators, not '.' or '..'. */
function plainName(p: string): boolean {
  return typeof p === 'string' && p.length > 0 && !/[/\\]/.test(p) && p !== '.' && p !== '..';
}

/**
 * Writes `<dir>/manifest.json` atomically. File paths may be given absolute (as saveTableStores
 * returns them) if they lie in `dir`; they are stored as names relative to `dir`.
 */
export async function writeManifest(dir: string, m: ManifestInput): Promise<string> {
  const files = m.files.map((f) => {
    let p = f.path;
    if (isAbsolute(p) || p.includes('/')) {
      if (resolve(dirname(p)) !== resolve(dir)) throw new ManifestError(`manifest file ${p} is not inside the checkpoint directory ${dir}`);
      p = basename(p);
    }
    return { ...f, path: p };
  });
  const manifest: CheckpointManifest = {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, step: m.step,
    createdAt: m.createdAt ?? new Date().toISOString(), model: m.model ?? null, cluster: m.cluster, files,
  };
  const bad = checkManifest(manifest);
  if (bad) throw new ManifestError(`not writing ${join(dir, MANIFEST_FILE)}: ${bad}`);
  const path = join(dir, MANIFEST_FILE);
  await writeBytesAtomic(path, JSON.stringify(manifest, null, 2) + '\n');
  return path;
}

/** The manifest's problem as a sentence, or null. */
export function checkManifest(m: unknown): string | null {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'manifest is not a JSON object';
  const x = m as Record<string, unknown>;
  if (x.format !== MANIFEST_FORMAT) return `format is ${JSON.stringify(x.format)}, expected "${MANIFEST_FORMAT}"`;
  if (x.version !== MANIFEST_VERSION) return `version ${JSON.stringify(x.version)} is not supported (this build reads ${MANIFEST_VERSION})`;
  if (!isCount(x.step)) return `step ${JSON.stringify(x.step)} is not a non-negative integer`;
  if (typeof x.createdAt !== 'string') return 'createdAt must be a string';
  const c = x.cluster as Record<string, unknown> | undefined;
  if (typeof c !== 'object' || c === null) return 'cluster must be an object { servers, workers }';
  for (const k of ['servers', 'workers']) if (!isCount(c[k])) return `cluster.${k} ${JSON.stringify(c[k])} is not a non-negative integer`;
  for (const k of ['replicas', 'epoch']) if (c[k] !== undefined && !isCount(c[k])) return `cluster.${k} ${JSON.stringify(c[k])} is not a non-negative integer`;
  if (!Array.isArray(x.files)) return 'files must be an array';
  const seen = new Set<string>();
  for (const [i, f] of (x.files as unknown[]).entries()) {
    if (typeof f !== 'object' || f === null) return `files[${i}] is not an object`;
    const e = f as Record<string, unknown>;
    if (!plainName(e.path as string)) return `files[${i}].path ${JSON.stringify(e.path)} must be a file name inside the checkpoint directory`;
    if (seen.has(e.path as string)) return `files[${i}].path ${e.path} is listed twice`;
    seen.add(e.path as string);
    if (typeof e.shard !== 'string') return `files[${i}].shard must be a string`;
    if (!isCount(e.bytes)) return `files[${i}].bytes ${JSON.stringify(e.bytes)} is not a non-negative integer`;
    if (!isCount(e.rows)) return `files[${i}].rows ${JSON.stringify(e.rows)} is not a non-negative integer`;
    if (e.tables !== undefined) {
      if (typeof e.tables !== 'object' || e.tables === null) return `files[${i}].tables must be an object of row counts`;
      for (const [t, n] of Object.entries(e.tables)) if (!isCount(n)) return `files[${i}].tables.${t} is not a row count`;
    }
  }
  return null;
}

/**
 * Reads and validates `<dir>/manifest.json`; with `checkFiles` (default) every listed file must
 * exist with the recorded size. `paths` are the files' full paths.
 */
export async function readManifest(dir: string, opts: { checkFiles?: boolean } = {}): Promise<CheckpointManifest & { paths: string[] }> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ManifestError(`${path}: cannot read: ${(e as Error).message}`);
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  const bad = checkManifest(m);
  if (bad) throw new ManifestError(`${path}: ${bad}`);
  const manifest = m as CheckpointManifest;
  const paths = manifest.files.map((f) => join(dir, f.path));
  if (opts.checkFiles ?? true) {
    for (const [i, f] of manifest.files.entries()) {
      let size: number;
      try {
        size = (await stat(paths[i]!)).size;
      } catch {
        throw new ManifestError(`${path}: lists ${f.path}, which is missing (incomplete checkpoint?)`);
      }
      if (size !== f.bytes) throw new ManifestError(`${path}: lists ${f.path} with ${f.bytes} bytes, the file has ${size} (incomplete or replaced?)`);
    }
  }
  return { ...manifest, paths };
}

/** The shard files of a checkpoint: the manifest's list if there is one, else every *.safetensors. */
export async function checkpointFiles(dir: string): Promise<string[]> {
  try {
    await stat(join(dir, MANIFEST_FILE));
  } catch {
    return listShardFiles(dir);
  }
  return (await readManifest(dir)).paths;
}
