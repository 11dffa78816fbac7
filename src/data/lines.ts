// The lines of text files, plain, gzip or BGZF (told by their first bytes, not their names),
// streamed in constant memory, with their 1-based line numbers (each file's own) and an index
// over the non-empty ones that runs on across the files of a data set (what the train/eval split
// and the workers' shares count). A read may start at a line start inside a file: a byte offset
// of a plain file, or a BGZF block and an offset into its uncompressed bytes.
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import { Transform, type Readable } from 'node:stream';
import { dataFileKind, type DataFileKind } from './bgzf.ts';

export interface NumberedLine {
  line: string;
  /** 1-based physical line number in its file, for error messages. */
  lineNo: number;
  /** 0-based index among the data set's non-empty lines. */
  index: number;
}

export interface FileLine extends NumberedLine {
  /** The file the line is in. */
  file: string;
}

/** Where a read starts: a line start, as a position to seek to, uncompressed bytes to drop after it, and the line's number and index. */
export interface LineStart { seek: number; skip: number; lineNo: number; index: number }

export async function isGzip(path: string): Promise<boolean> {
  return (await dataFileKind(path)) !== 'plain';
}

/** Drops the first `n` bytes of a stream (a read that starts inside a BGZF block). */
function dropBytes(n: number): Transform {
  let left = n;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (left >= chunk.length) { left -= chunk.length; done(); return; }
      const rest = left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
      done(null, rest);
    },
  });
}

/** A read or inflate error, with the file it happened in. */
export function fileError(path: string, e: unknown): Error {
  const msg = (e as Error)?.message ?? String(e);
  return msg.startsWith(path) ? (e as Error) : new Error(`${path}: ${msg}${(e as { code?: string })?.code?.startsWith('Z_') ? ' (a truncated or damaged gzip file?)' : ''}`);
}

/** The numbered lines of `path` (of kind `kind`) from the line start `at`. */
export async function* linesFrom(path: string, kind: DataFileKind, at: LineStart): AsyncGenerator<NumberedLine> {
  if (kind === 'gzip' && at.seek !== 0) throw new Error(`${path}: a plain gzip file can only be read from its start`);
  const raw = createReadStream(path, { start: at.seek, highWaterMark: 1 << 20 });
  let input: Readable = kind === 'plain' ? raw : raw.pipe(createGunzip());
  if (at.skip > 0) input = input.pipe(dropBytes(at.skip));
  raw.on('error', (e) => input.destroy(e));
  try {
    yield* numberLines(raw, input, at.lineNo, at.index);
  } catch (e) {
    throw fileError(path, e);
  }
}

/** The lines of `files` one after the other, each numbered from 1, indexed on from `firstIndex`. */
export async function* dataLines(files: string[], firstIndex = 0): AsyncGenerator<FileLine> {
  let index = firstIndex;
  for (const file of files) {
    for await (const l of linesFrom(file, await dataFileKind(file), { seek: 0, skip: 0, lineNo: 1, index })) {
      index = l.index + 1;
      yield { ...l, file };
    }
  }
}

export function numberedLines(path: string): AsyncGenerator<FileLine> {
  return dataLines([path]);
}

/**
 * The lines of `input` (read from `raw`, destroyed at the end), numbered from `firstLineNo` and
 * indexed from `firstIndex`: a whole file from 1 and 0, a share of one from where it starts.
 */
export async function* numberLines(raw: Readable, input: Readable, firstLineNo: number, firstIndex: number): AsyncGenerator<NumberedLine> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  let lineNo = firstLineNo - 1, index = firstIndex;
  try {
    for await (const l of rl) {
      lineNo++;
      const line = l.endsWith('\r') ? l.slice(0, -1) : l;
      if (line.length === 0) continue;
      yield { line, lineNo, index: index++ };
    }
  } finally {
    rl.close();
    raw.destroy();
  }
}
