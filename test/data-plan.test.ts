// The data plan and reading from it, on real files written here: random files (blank lines, CRLF
// endings, a missing final newline) as plain text, plain gzip (several members too) and BGZF (blocks
// small enough that lines straddle them, written with src/data/bgzf.ts over node:zlib), alone and
// several at once. The plan's line counts and global indices match a sequential read, and the
// lines of any index interval read from the plan's anchors (seeks into plain files and into BGZF
// blocks) are exactly that interval of the sequential read: same text, each file's own line
// numbers, same global indices, the right file. Also `--data` resolution (natural order, a
// directory, a glob, a comma list, the errors).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { planData, planLines } from '../src/data/data-plan.ts';
import { dataLines, type FileLine } from '../src/data/lines.ts';
import { bgzfCompress, dataFileKind } from '../src/data/bgzf.ts';
import { resolveDataFiles, naturalCompare } from '../src/data/data-files.ts';
import { rng, testSeed } from './helpers/reference.ts';
import { tmp } from './helpers/train.ts';

const dir = tmp('hps-plan-');

async function collect(it: AsyncIterable<FileLine[]>): Promise<FileLine[]> {
  const out: FileLine[] = [];
  for await (const block of it) out.push(...block);
  return out;
}

function randomText(r: () => number): string {
  const n = Math.floor(r() * 60);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const blank = r() < 0.15;
    const text = blank ? '' : Array.from({ length: 1 + Math.floor(r() * 40) }, () => 'abc\t0123'[Math.floor(r() * 8)]).join('');
    parts.push(text + (i === n - 1 && r() < 0.5 ? '' : r() < 0.3 ? '\r\n' : '\n'));
  }
  return parts.join('');
}

function writeKind(path: string, text: string, kind: 'plain' | 'gzip' | 'gzip2' | 'bgzf', r: () => number): void {
  const b = Buffer.from(text);
  if (kind === 'plain') writeFileSync(path, b);
  else if (kind === 'gzip') writeFileSync(path, gzipSync(b));
  else if (kind === 'gzip2') { const h = Math.floor(b.length / 2); writeFileSync(path, Buffer.concat([gzipSync(b.subarray(0, h)), gzipSync(b.subarray(h))])); }
  else writeFileSync(path, bgzfCompress(b, 1 + Math.floor(r() * 50)));
}

test('plans count and anchor every kind of file; any interval reads back exactly', async () => {
  const seed = testSeed(), r = rng(seed);
  const kinds = ['plain', 'gzip', 'gzip2', 'bgzf'] as const;
  for (let set = 0; set < 10; set++) {
    const files: string[] = [];
    const nFiles = 1 + Math.floor(r() * 4);
    for (let f = 0; f < nFiles; f++) {
      const kind = kinds[Math.floor(r() * kinds.length)]!;
      const path = join(dir, `s${set}-f${f}-${kind}`);
      writeKind(path, randomText(r), kind, r);
      assert.is(await dataFileKind(path), kind === 'gzip2' ? 'gzip' : kind);
      files.push(path);
    }
    const all = await collect(dataLines(files));
    assert.equal(all.map((l) => l.index), all.map((_, i) => i), `indices run on across files (seed ${seed})`);
    const plan = await planData(files, { anchorBytes: 1 + Math.floor(r() * 30) });
    assert.is(plan.lines, all.length, `plan line count (seed ${seed})`);
    for (const f of plan.files) assert.is(f.lines, all.filter((l) => l.file === f.path).length, `${f.path}: lines (seed ${seed})`);
    assert.ok(plan.files.some((f) => f.kind === 'gzip') || plan.files.every((f) => f.lines < 3 || f.anchors.length > 1) || plan.lines < 3, 'seekable files have anchors inside');
    for (let q = 0; q < 12; q++) {
      const lo = Math.floor(r() * (all.length + 2)), hi = lo + Math.floor(r() * (all.length + 2 - lo));
      assert.equal(await collect(planLines(plan, lo, hi)), all.slice(lo, hi), `[${lo}, ${hi}) of ${all.length} (seed ${seed})`);
    }
  }
});

test('a BGZF file reads as gzip and every block boundary is crossed correctly', async () => {
  const text = Array.from({ length: 500 }, (_, i) => `${i % 2}\tline ${i} ${'x'.repeat(i % 37)}`).join('\n') + '\n';
  const path = join(dir, 'big.bgz');
  writeFileSync(path, bgzfCompress(Buffer.from(text), 333));
  const plan = await planData([path], { anchorBytes: 500 });
  assert.is(plan.files[0]!.kind, 'bgzf');
  assert.is(plan.lines, 500);
  assert.ok(plan.files[0]!.anchors.some((a) => a.seek > 0 && a.skip > 0), 'anchors inside blocks');
  const lines = await collect(planLines(plan, 123, 456));
  assert.equal(lines.map((l) => l.line), text.split('\n').slice(123, 456));
  assert.equal(lines.map((l) => l.lineNo), Array.from({ length: 333 }, (_, i) => 124 + i));
});

test('a truncated gzip or BGZF file is an error that names the file, in the plan and in a read', async () => {
  const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `1\tline ${i}`).join('\n') + '\n');
  for (const [name, bytes] of [['cut.gz', gzipSync(text)], ['cut.bgz', bgzfCompress(text, 4000)]] as const) {
    const path = join(dir, name);
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await planData([path]).then(() => assert.unreachable('planned'), (e: Error) => assert.match(e.message, new RegExp(`^${path}: .*(truncated|cut short)`)));
    await collect(dataLines([path])).then(() => assert.unreachable('read'), (e: Error) => assert.match(e.message, new RegExp(`^${path}: .*truncated`)));
  }
});

test('--data: a file, a directory and a glob in natural order, a comma list in its order', () => {
  const d = join(dir, 'days');
  mkdirSync(d);
  for (const n of ['day_10', 'day_2', 'day_0', 'day_1.gz', '.hidden', 'day_0.meta.json']) writeFileSync(join(d, n), '1\n');
  mkdirSync(join(d, 'sub'));
  assert.equal(resolveDataFiles(d).map((p) => p.slice(d.length + 1)), ['day_0', 'day_1.gz', 'day_2', 'day_10']);
  assert.equal(resolveDataFiles(join(d, 'day_?')).map((p) => p.slice(d.length + 1)), ['day_0', 'day_2']);
  assert.equal(resolveDataFiles(`${join(d, 'day_10')},${join(d, 'day_*.gz')}`).map((p) => p.slice(d.length + 1)), ['day_10', 'day_1.gz']);
  assert.throws(() => resolveDataFiles(join(d, 'nope_*')), /no file in .* matches nope_\*/);
  assert.throws(() => resolveDataFiles(join(d, 'missing')), /no such file or directory/);
  assert.throws(() => resolveDataFiles(`${d},${join(d, 'day_2')}`), /named twice/);
  assert.throws(() => resolveDataFiles(join(d, 'sub')), /no data files/);
  assert.equal(['a10', 'a9', 'a09', 'b', 'a'].sort(naturalCompare), ['a', 'a9', 'a09', 'a10', 'b']);
});

test.run();
