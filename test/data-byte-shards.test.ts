// Byte-range shards of a data file: for random files (blank lines, CRLF endings, a missing final
// newline, lines longer than nothing at all) and worker counts from 1 to more workers than lines,
// the shards' lines, concatenated in rank order, are exactly the whole file's numbered lines (the
// same text, physical line numbers and non-empty indices), each shard starts at a line start, and
// the training-line counts match the split. Real files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planByteShards, shardLines } from '../src/data/byte-shards.ts';
import { numberedLines, type NumberedLine } from '../src/data/lines.ts';
import { isEvalIndex } from '../src/data/criteo.ts';
import { rng, testSeed } from './helpers/reference.ts';
import { tmp } from './helpers/train.ts';

const dir = tmp('hps-shards-');

async function collect(it: AsyncIterable<NumberedLine>): Promise<NumberedLine[]> {
  const out: NumberedLine[] = [];
  for await (const l of it) out.push(l);
  return out;
}

test('shards partition the numbered lines exactly, at line starts', async () => {
  const seed = testSeed(), r = rng(seed);
  for (let f = 0; f < 12; f++) {
    const n = Math.floor(r() * 40);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) {
      const blank = r() < 0.15;
      const text = blank ? '' : Array.from({ length: 1 + Math.floor(r() * 30) }, () => 'abc\t0123'[Math.floor(r() * 8)]).join('');
      parts.push(text + (i === n - 1 && r() < 0.5 ? '' : r() < 0.3 ? '\r\n' : '\n'));
    }
    const path = join(dir, `f${f}.tsv`);
    writeFileSync(path, parts.join(''));
    const bytes = readFileSync(path);
    const all = await collect(numberedLines(path));
    for (const W of [1, 2, 3, 5, 7, n + 3]) {
      const plan = await planByteShards(path, W, 4);
      const got: NumberedLine[] = [];
      for (const [k, s] of plan.entries()) {
        assert.ok(s.start === 0 || s.start >= bytes.length || bytes[s.start - 1] === 10, `shard ${k} starts at a line start (seed ${seed})`);
        const lines = await collect(shardLines(path, s));
        assert.is(lines.length, s.lines, `shard ${k} of ${W}: line count (seed ${seed})`);
        assert.is(lines.filter((l) => !isEvalIndex(l.index, 4)).length, s.trainLines, `shard ${k} of ${W}: training lines (seed ${seed})`);
        got.push(...lines);
      }
      assert.equal(got, all, `file ${f}, ${W} workers (seed ${seed})`);
    }
  }
});

test('an even file splits evenly', async () => {
  const path = join(dir, 'even.tsv');
  writeFileSync(path, Array.from({ length: 1000 }, (_, i) => `line-${String(i).padStart(4, '0')}`).join('\n') + '\n');
  const plan = await planByteShards(path, 4, 0);
  assert.equal(plan.map((s) => s.lines), [250, 250, 250, 250]);
  assert.equal(plan.map((s) => s.firstLineNo), [1, 251, 501, 751]);
});

test.run();
