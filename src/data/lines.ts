// The lines of text files, plain, gzip or BGZF (told by their first bytes, not their names),
// streamed in constant memory, with their 1-based line numbers (each file's own) and an index
// over the non-empty ones that runs on across the files of a data set (what the train/eval split
// and the workers' shares count). A read may start at a line start inside a file: a byte offset
// of a plain file, or a BGZF block and an offset into its uncompressed bytes.
// Lines come in blocks, one per chunk of the file's bytes (LineBlock), split here at `\n` (a `\r`
// before it is dropped), as the plan's LineScanner counts them. Why: a worker's main thread reads
// its batches, and one await per line through readline and three generators cost 7.4 ms of CPU
// per 2048 lines, more than parsing them (2.6 ms); a block per chunk, 1.5 ms (200k gen-data lines,
// 2026-12-04).
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
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

/** The non-empty lines of one chunk of a file's bytes, in order (never empty). */
export type LineBlock = FileLine[];

/** Where a read starts: a line start, as a position to seek to, uncompressed bytes to drop after it, and the line's number and index. */
export interface LineStart { seek: number; skip: number; lineNo: number; index: number }

export async function isGzip(path: string): Promise<boolean> {
  return (await dataFileKind(path)) !== 'plain';
}

/**
 * Counts lines in chunks of a file's uncompressed bytes (the plan's newline scan); calls
 * `onLineStart` after every newline, and stops there when it returns true.
 */
export class LineScanner {
  lineNo = 0; nonEmpty = 0;
  private lineLen = 0; private lastByte = -1;
  constructor(private readonly onLineStart: (pos: number) => boolean | void) {}
  /** `buf` holds the file's uncompressed bytes from `pos`; returns where in `buf` it stopped, or -1. */
  feed(buf: Uint8Array, pos: number): number {
    let from = 0;
    for (let nl = buf.indexOf(10, 0); nl !== -1; nl = buf.indexOf(10, from)) {
      this.lineLen += nl - from;
      const cr = this.lineLen > 0 && (nl > 0 ? buf[nl - 1] : this.lastByte) === 13 ? 1 : 0;
      this.line(this.lineLen - cr === 0);
      from = nl + 1;
      this.lineLen = 0;
      if (this.onLineStart(pos + from) === true) return from;
    }
    this.lineLen += buf.length - from;
    if (buf.length) this.lastByte = buf[buf.length - 1]!;
    return -1;
  }
  end(): void {
    if (this.lineLen > 0) this.line(this.lineLen === 1 && this.lastByte === 13);
  }
  private line(empty: boolean): void {
    this.lineNo++;
    if (!empty) this.nonEmpty++;
  }
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

/**
 * Drops the lines before the one of index `at.index + need` (bytes scanned for newlines, no
 * strings made); `from` then holds that line's number and index. Measured (bench/data.ts, the last
 * of 4 workers on one plain gzip file; two runs one after the other, load 9-14): 1273 ms through
 * readline, 1055 ms so; a whole parse 1300-1352 ms.
 */
function dropLines(at: LineStart, need: number, from: { lineNo: number; index: number }): Transform {
  let done = false;
  const scan: LineScanner = new LineScanner((): boolean => scan.nonEmpty === need);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (done) { cb(null, chunk); return; }
      const stop = scan.feed(chunk, 0);
      if (stop < 0) { cb(); return; }
      done = true;
      Object.assign(from, { lineNo: at.lineNo + scan.lineNo, index: at.index + need });
      cb(null, chunk.subarray(stop));
    },
  });
}

/** The numbered lines of `path` (of kind `kind`) from the line start `at`, or from the line of index `fromIndex` after it, in blocks. */
export async function* linesFrom(path: string, kind: DataFileKind, at: LineStart, fromIndex = at.index): AsyncGenerator<LineBlock> {
  if (kind === 'gzip' && at.seek !== 0) throw new Error(`${path}: a plain gzip file can only be read from its start`);
  const raw = createReadStream(path, { start: at.seek, highWaterMark: 1 << 20 });
  let input: Readable = kind === 'plain' ? raw : raw.pipe(createGunzip());
  if (at.skip > 0) input = input.pipe(dropBytes(at.skip));
  const from = { lineNo: at.lineNo, index: at.index };
  if (fromIndex > at.index) input = input.pipe(dropLines(at, fromIndex - at.index, from));
  raw.on('error', (e) => input.destroy(e));
  try {
    yield* numberLines(raw, input, from, path);
  } catch (e) {
    throw fileError(path, e);
  }
}

/** The lines of `files` one after the other, each numbered from 1, indexed on from `firstIndex`, in blocks. */
export async function* dataLines(files: string[], firstIndex = 0): AsyncGenerator<LineBlock> {
  let index = firstIndex;
  for (const file of files) {
    for await (const block of linesFrom(file, await dataFileKind(file), { seek: 0, skip: 0, lineNo: 1, index })) {
      index = block[block.length - 1]!.index + 1;
      yield block;
    }
  }
}

export function numberedLines(path: string): AsyncGenerator<LineBlock> {
  return dataLines([path]);
}

/**
 * The lines of `input` (read from `raw`, destroyed at the end) of the file `file`, a block per
 * chunk, numbered and indexed from `first` (read at the first chunk: a dropLines before it sets
 * it): a whole file from 1 and 0, a share of one from where it starts. A line cut by a chunk's end
 * is carried (its bytes only) into the next chunk's block; the last line needs no newline.
 */
export async function* numberLines(raw: Readable, input: Readable, first: { lineNo: number; index: number }, file: string): AsyncGenerator<LineBlock> {
  let lineNo = -1, index = -1;
  let carry: Buffer | null = null;
  const take = (block: LineBlock, buf: Buffer, start: number, end: number): void => {
    lineNo++;
    if (end > start && buf[end - 1] === 13) end--;
    if (end > start) block.push({ line: buf.toString('utf8', start, end), lineNo, index: index++, file });
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      if (lineNo < 0) { lineNo = first.lineNo - 1; index = first.index; }
      const block: LineBlock = [];
      let from = 0, nl = chunk.indexOf(10);
      if (carry && nl >= 0) {
        const head: Buffer = Buffer.concat([carry, chunk.subarray(0, nl)]);
        take(block, head, 0, head.length);
        carry = null; from = nl + 1; nl = chunk.indexOf(10, from);
      }
      for (; nl >= 0; nl = chunk.indexOf(10, from)) { take(block, chunk, from, nl); from = nl + 1; }
      // No newline left: the rest is the start of a line (added to one already carried, rarely: a line longer than a chunk).
      if (from < chunk.length) carry = carry ? Buffer.concat([carry, chunk]) : Buffer.from(chunk.subarray(from));
      if (block.length > 0) yield block;
    }
    if (carry) {
      const block: LineBlock = [];
      take(block, carry, 0, carry.length);
      if (block.length > 0) yield block;
    }
  } finally {
    raw.destroy();
  }
}
