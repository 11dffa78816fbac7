// The files a `--data` value names, in the order their lines form the data set: a file, a
// directory (its regular files, not hidden ones or gen-data's `.meta.json` sidecars), a glob in
// the last path component (`criteo/day_*.gz`: `*` and `?`), or a comma-separated list of any of
// these. A directory's or a glob's files come in natural order (day_2 before day_10, as a user of
// Criteo Terabyte's day_0 ... day_23 expects); a list keeps its own order. The order fixes every
// line's global index, so the train/eval split, the workers' shares and a checkpoint's data
// position mean the same on every worker and on resume.
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

export class DataFilesError extends Error {
  override name = 'DataFilesError';
}

/** Natural order: runs of digits compare as numbers, the rest by code unit. */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [], rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i]!, y = rb[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x), dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = x.replace(/^0+/, ''), ny = y.replace(/^0+/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return ra.length - rb.length;
}

const isDataName = (n: string) => !n.startsWith('.') && !n.endsWith('.meta.json');

function regularFiles(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir).filter((n) => keep(n) && isDataName(n) && statSync(join(dir, n)).isFile())
    .sort(naturalCompare).map((n) => join(dir, n));
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

/** One entry of the list: a file, a directory or a glob, as absolute paths. */
function expand(entry: string): string[] {
  const abs = resolve(entry);
  const name = basename(abs);
  if (/[*?]/.test(name)) {
    const dir = dirname(abs);
    if (/[*?]/.test(dir)) throw new DataFilesError(`--data ${entry}: a glob may only be in the file name (${dir} has one)`);
    let files: string[];
    try { files = regularFiles(dir, (n) => globToRegExp(name).test(n)); } catch {
      throw new DataFilesError(`--data ${entry}: cannot read the directory ${dir}`);
    }
    if (!files.length) throw new DataFilesError(`--data ${entry}: no file in ${dir} matches ${name}`);
    return files;
  }
  let st;
  try { st = statSync(abs); } catch { throw new DataFilesError(`--data ${entry}: no such file or directory`); }
  if (st.isDirectory()) {
    const files = regularFiles(abs, () => true);
    if (!files.length) throw new DataFilesError(`--data ${entry}: the directory has no data files`);
    return files;
  }
  return [abs];
}

/** The data files of `spec`, absolute, each once (a file named twice is an error: its lines would count twice). */
export function resolveDataFiles(spec: string): string[] {
  const entries = spec.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (!entries.length) throw new DataFilesError('--data names no file');
  const files = entries.flatMap(expand);
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f)) throw new DataFilesError(`--data ${spec}: ${f} is named twice (its lines would be trained twice an epoch)`);
    seen.add(f);
  }
  return files;
}

/** How a run's log and summary name the data: the one file, or the first and the count. */
export function describeDataFiles(files: string[]): string {
  return files.length === 1 ? files[0]! : `${files.length} files (${basename(files[0]!)} ... ${basename(files[files.length - 1]!)})`;
}
