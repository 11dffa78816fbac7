// The line splitter under every reader (src/data/lines.ts: numberLines), fed the bytes of random
// texts cut at random places: inside a line, between a `\r` and its `\n`, inside a multi-byte
// UTF-8 character, into empty chunks, lines longer than a chunk. Whatever the cuts, its blocks
// hold exactly the lines `text.split('\n')` gives (a `\r` before the `\n` dropped, blank lines
// skipped but counted in the line numbers, the last line without a newline kept), indexed on
// from where the read started, and no block is empty. Also the real readers on files: a file of
// many chunks read through dataLines equals the reference, and a read that stops early
// (break) closes its file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Readable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { numberLines, dataLines, type FileLine } from '../src/data/lines.ts';
import { rng, testSeed } from './helpers/reference.ts';
import { tmp } from './helpers/train.ts';

const dir = tmp('hps-lines-');

/** What every reader must give for `text`: the non-empty lines, numbered from `lineNo`, indexed from `index`. */
function reference(text: string, file: string, lineNo = 1, index = 0): FileLine[] {
  const parts = text.split('\n');
  if (parts[parts.length - 1] === '') parts.pop(); // a final newline ends the last line; it starts none
  const out: FileLine[] = [];
  parts.forEach((p, i) => {
    const line = p.endsWith('\r') ? p.slice(0, -1) : p;
    if (line.length > 0) out.push({ line, lineNo: lineNo + i, index: index++, file });
  });
  return out;
}

function randomText(r: () => number, lines: number, maxLen: number): string {
  const chars = ['a', 'b', '\t', '0', '9', 'é', '漢', '\r', ' '];
  const parts: string[] = [];
  for (let i = 0; i < lines; i++) {
    const len = r() < 0.15 ? 0 : 1 + Math.floor(r() * maxLen);
    const text = Array.from({ length: len }, () => chars[Math.floor(r() * chars.length)]!).join('');
    parts.push(text + (i === lines - 1 && r() < 0.5 ? '' : r() < 0.3 ? '\r\n' : '\n'));
  }
  return parts.join('');
}

/** `bytes` cut at random places into chunks of 0 to `maxChunk` bytes. */
function cut(bytes: Buffer, r: () => number, maxChunk: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = Math.floor(r() * (maxChunk + 1));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function readAll(chunks: Buffer[], first: { lineNo: number; index: number }, file: string): Promise<FileLine[]> {
  const input = Readable.from(chunks, { objectMode: true });
  const out: FileLine[] = [];
  for await (const block of numberLines(input, input, first, file)) {
    assert.ok(block.length > 0, 'no empty block');
    out.push(...block);
  }
  return out;
}

test('numberLines gives the lines of any cut of the bytes, numbered and indexed', async () => {
  const seed = testSeed(), r = rng(seed);
  for (let round = 0; round < 200; round++) {
    const text = randomText(r, Math.floor(r() * 40), r() < 0.2 ? 200 : 12);
    const bytes = Buffer.from(text, 'utf8');
    const first = { lineNo: 1 + Math.floor(r() * 5), index: Math.floor(r() * 100) };
    const got = await readAll(cut(bytes, r, 1 + Math.floor(r() * 64)), first, 'f.tsv');
    assert.equal(got, reference(text, 'f.tsv', first.lineNo, first.index), `round ${round} (seed ${seed}): ${JSON.stringify(text)}`);
  }
});

test('a \\r\\n cut between its two bytes, a character cut inside, a line longer than a chunk', async () => {
  const text = 'ab\r\nc漢d\r\n\r\n' + 'x'.repeat(50) + '\nlast\r';
  const b = Buffer.from(text, 'utf8'), cr = b.indexOf(13), han = b.indexOf(Buffer.from('漢'));
  const chunks = [b.subarray(0, cr + 1), b.subarray(cr + 1, han + 1), b.subarray(han + 1, han + 2), Buffer.alloc(0), b.subarray(han + 2, han + 20), b.subarray(han + 20, han + 30), b.subarray(han + 30)];
  assert.equal(Buffer.concat(chunks).toString('utf8'), text);
  const got = await readAll(chunks, { lineNo: 1, index: 0 }, 'g');
  assert.equal(got.map((l) => [l.line, l.lineNo, l.index]), [['ab', 1, 0], ['c漢d', 2, 1], ['x'.repeat(50), 4, 2], ['last', 5, 3]]);
});

test('dataLines over files of many chunks: the reference lines, indices running on across files', async () => {
  const seed = testSeed(), r = rng(seed);
  // ~2.5 MB and ~0.3 MB: the first is read in several 1 MiB chunks, so lines straddle them.
  const texts = [randomText(r, 60_000, 80), randomText(r, 8000, 80)];
  const paths = texts.map((t, i) => { const p = join(dir, `many-${i}.tsv`); writeFileSync(p, t); return p; });
  const got: FileLine[] = [];
  let blocks = 0;
  for await (const block of dataLines(paths)) { got.push(...block); blocks++; }
  const want0 = reference(texts[0]!, paths[0]!), want1 = reference(texts[1]!, paths[1]!, 1, want0.length);
  assert.ok(blocks >= 4, `${blocks} blocks: the big file came in several chunks`);
  assert.equal(got.length, want0.length + want1.length);
  assert.equal(got, [...want0, ...want1], `seed ${seed}`);
});

test('a read that stops early closes its file', async () => {
  const p = join(dir, 'early.tsv');
  writeFileSync(p, 'a\n'.repeat(1_000_000));
  const input = Readable.from([Buffer.from('x\ny\n'), Buffer.from('z\n')], { objectMode: true });
  for await (const block of numberLines(input, input, { lineNo: 1, index: 0 }, 'z')) { assert.is(block[0]!.line, 'x'); break; }
  assert.ok(input.destroyed, 'the stream is destroyed after a break');
  let n = 0;
  for await (const block of dataLines([p])) { n += block.length; break; }
  assert.ok(n > 0 && n < 1_000_000, `read ${n} lines, then stopped`);
});

test.run();
