// What the data set is, line by line, without parsing it: one newline scan over every file (plain
// files read, gzip and BGZF files inflated) that counts each file's lines and non-empty lines and
// records line starts a reader can seek to ("anchors"), about every `anchorBytes` uncompressed
// bytes: byte offsets in plain files, (block, offset into the block) in BGZF files, only the
// start of a plain gzip file (a deflate stream cannot be entered in the middle). The plan does not
// depend on the worker count, so the shares of any count, and a resume onto another count, are
// cut from the same plan (src/data/schedule.ts), and every worker computes the same plan.
// Lines end at `\n` (a `\r` before it is dropped); blank lines do not count in the index, as in
// lines.ts, whose readers the plan's anchors start.
// Measured (200k gen-data lines, one plain file, load average 16 on 2 cores): the scan 392 ms
// against 2655 ms to parse the whole file, so planning costs every worker ~1/7 of a full parse.
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createGunzip, gunzipSync } from 'node:zlib';
import { dataFileKind, bgzfBlocks, type DataFileKind } from './bgzf.ts';
import { linesFrom, fileError, LineScanner, type LineBlock, type LineStart } from './lines.ts';

export interface FilePlan {
  path: string;
  kind: DataFileKind;
  /** Size on disk (compressed for gzip and BGZF). */
  bytes: number;
  /** Global index of the file's first non-empty line, and its count of non-empty lines. */
  firstIndex: number; lines: number;
  /** Line starts to read from, by increasing index; the first is the file's start. */
  anchors: LineStart[];
}

export interface DataPlan { files: FilePlan[]; lines: number }

export const ANCHOR_BYTES = 4 << 20;

async function planFile(path: string, firstIndex: number, anchorBytes: number): Promise<FilePlan> {
  const kind = await dataFileKind(path);
  const anchors: LineStart[] = [{ seek: 0, skip: 0, lineNo: 1, index: firstIndex }];
  // Where the current BGZF block starts, compressed and uncompressed (plain: the position itself).
  let blockAt = 0, blockPos = 0, lastAnchor = 0;
  const scan = new LineScanner((pos) => {
    if (kind === 'gzip' || pos - lastAnchor < anchorBytes) return;
    lastAnchor = pos;
    anchors.push(kind === 'plain'
      ? { seek: pos, skip: 0, lineNo: scan.lineNo + 1, index: firstIndex + scan.nonEmpty }
      : { seek: blockAt, skip: pos - blockPos, lineNo: scan.lineNo + 1, index: firstIndex + scan.nonEmpty });
  });
  if (kind === 'gzip') {
    let pos = 0;
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }).pipe(createGunzip()) as AsyncIterable<Buffer>) {
      scan.feed(chunk, pos);
      pos += chunk.length;
    }
  } else {
    const fh = await open(path, 'r');
    try {
      if (kind === 'plain') {
        const buf = Buffer.alloc(1 << 20);
        for (let pos = 0; ;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) break;
          scan.feed(buf.subarray(0, bytesRead), pos);
          pos += bytesRead;
        }
      } else {
        let pos = 0;
        for await (const { at, block } of bgzfBlocks(fh, path)) {
          const data = gunzipSync(block);
          blockAt = at; blockPos = pos;
          scan.feed(data, pos);
          pos += data.length;
        }
      }
    } finally {
      await fh.close();
    }
  }
  scan.end();
  return { path, kind, bytes: (await stat(path)).size, firstIndex, lines: scan.nonEmpty, anchors };
}

/** The plan of `files` (in this order); `onFile` hears of each file as it is planned (progress). */
export async function planData(files: string[], o: { anchorBytes?: number; onFile?: (f: FilePlan, ms: number) => void } = {}): Promise<DataPlan> {
  const out: FilePlan[] = [];
  let index = 0;
  for (const path of files) {
    const t = performance.now();
    const f = await planFile(path, index, o.anchorBytes ?? ANCHOR_BYTES).catch((e: unknown) => { throw fileError(path, e); });
    o.onFile?.(f, performance.now() - t);
    out.push(f);
    index += f.lines;
  }
  return { files: out, lines: index };
}

/** The file holding non-empty line `index` (the plan's position of it). */
export function fileOf(plan: DataPlan, index: number): FilePlan | undefined {
  return plan.files.find((f) => index >= f.firstIndex && index < f.firstIndex + f.lines);
}

/** The lines with global index in [lo, hi), each read from the nearest anchor before it, in blocks. */
export async function* planLines(plan: DataPlan, lo: number, hi: number): AsyncGenerator<LineBlock> {
  for (const f of plan.files) {
    if (f.firstIndex + f.lines <= lo || f.lines === 0) continue;
    if (f.firstIndex >= hi) break;
    let a = f.anchors[0]!;
    for (const c of f.anchors) { if (c.index <= lo) a = c; else break; }
    // Between the anchor and lo the bytes are only scanned for newlines, not split into strings.
    for await (const block of linesFrom(f.path, f.kind, a, Math.max(lo, a.index))) {
      if (block[block.length - 1]!.index < hi) { yield block; continue; }
      const n = block.findIndex((l) => l.index >= hi);
      if (n > 0) yield block.slice(0, n);
      break;
    }
  }
}
