// The lines of a text file, plain or gzip (told by its magic bytes, not its name), streamed in
// constant memory, with their 1-based line numbers and an index over the non-empty ones (what the
// train/eval split and sharding count).
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export interface NumberedLine {
  line: string;
  /** 1-based physical line number, for error messages. */
  lineNo: number;
  /** 0-based index among non-empty lines. */
  index: number;
}

export async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(2);
    const { bytesRead } = await fh.read(b, 0, 2, 0);
    return bytesRead === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

export async function* numberedLines(path: string): AsyncGenerator<NumberedLine> {
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  const input = (await isGzip(path)) ? raw.pipe(createGunzip()) : raw;
  raw.on('error', (e) => input.destroy(e));
  yield* numberLines(raw, input, 1, 0);
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
