// The synthetic generator: a seed gives the same bytes, another seed other bytes; the file parses
// through the Criteo reader with no bad line, gzip or not; positive rate and planted AUC are in
// their ranges and the sidecar agrees with the file; ids are Zipf-skewed but not 0, 1, 2; empty
// fields occur; the Zipf sampler matches the exact law; a 20k-sample run is quick; in-memory
// samples (plantedSamples) follow the file's id distribution.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic, zipfSampler, plantedSamples, type SyntheticMeta } from '../src/data/synthetic.ts';
import { CRITEO_CATS, CRITEO_DENSE, readCriteo, type Minibatch } from '../src/data/criteo.ts';
import { mulberry32 } from '../src/util/hash.ts';

const dir = mkdtempSync(join(tmpdir(), 'hybridps-synth-'));
const R = 1000;

async function readAll(path: string, rowsPerTable = R) {
  const reader = readCriteo(path, { rowsPerTable });
  const batches: Minibatch[] = [];
  for await (const mb of reader.batches(4096)) batches.push(mb);
  return { stats: reader.stats, batches };
}

test('same seed, same bytes; another seed, other bytes', async () => {
  const a = join(dir, 'a.tsv'), b = join(dir, 'b.tsv'), c = join(dir, 'c.tsv');
  await generateSynthetic({ out: a, samples: 3000, seed: 11, rowsPerTable: R });
  await generateSynthetic({ out: b, samples: 3000, seed: 11, rowsPerTable: R });
  await generateSynthetic({ out: c, samples: 3000, seed: 12, rowsPerTable: R });
  assert.ok(readFileSync(a).equals(readFileSync(b)), 'seed 11 twice');
  assert.not.ok(readFileSync(a).equals(readFileSync(c)), 'seed 11 vs 12');
  assert.is(readFileSync(`${a}.meta.json`, 'utf8'), readFileSync(`${b}.meta.json`, 'utf8'));
});

test('20k samples: parse cleanly, rates and AUC in range, sidecar consistent', async () => {
  const out = join(dir, 'd.tsv');
  const progress: number[] = [];
  const s = await generateSynthetic({ out, samples: 20_000, seed: 7, rowsPerTable: R, onProgress: (done, total) => { assert.is(total, 20_000); progress.push(done); } });
  assert.ok(progress.length >= 2 && progress.at(-1) === 20_000 && progress.every((p, i) => i === 0 || p > progress[i - 1]!), String(progress));

  const { stats, batches } = await readAll(out);
  assert.equal({ lines: stats.lines, samples: stats.samples, bad: stats.bad }, { lines: 20_000, samples: 20_000, bad: 0 });
  let positives = 0;
  for (const mb of batches) for (let i = 0; i < mb.size; i++) positives += mb.labels[i]!;
  assert.ok(s.positiveRate >= 0.15 && s.positiveRate <= 0.35, `positive rate ${s.positiveRate}`);
  assert.is(positives / 20_000, s.positiveRate);
  assert.ok(s.plantedAuc >= 0.7 && s.plantedAuc <= 0.9, `planted AUC ${s.plantedAuc}`);
  assert.ok(s.plantedLogloss > 0.3 && s.plantedLogloss < Math.log(2), `planted logloss ${s.plantedLogloss}`);
  assert.is(s.evalSamples, 2000);

  assert.ok(existsSync(`${out}.meta.json`));
  const meta = JSON.parse(readFileSync(`${out}.meta.json`, 'utf8')) as SyntheticMeta;
  assert.equal(
    { format: meta.format, generator: meta.generator, seed: meta.seed, samples: meta.samples, rowsPerTable: meta.rowsPerTable, evalEvery: meta.evalEvery, positiveRate: meta.positiveRate, plantedAuc: meta.plantedAuc, plantedLogloss: meta.plantedLogloss },
    { format: 'criteo', generator: 'hybridps gen-data', seed: 7, samples: 20_000, rowsPerTable: R, evalEvery: 10, positiveRate: s.positiveRate, plantedAuc: s.plantedAuc, plantedLogloss: s.plantedLogloss },
  );
  assert.is(s.bytes, readFileSync(out).length);

  // The written layout: 40 fields, 8-digit lowercase hex, some empty fields, Zipf-skewed ids
  // whose most frequent values are scattered over the table (not 0, 1, 2).
  const lines = readFileSync(out, 'utf8').split('\n');
  assert.is(lines.pop(), '');
  let emptyDense = 0, emptyCat = 0;
  for (const l of lines.slice(0, 2000)) {
    const f = l.split('\t');
    assert.is(f.length, 40);
    for (let j = 1; j <= CRITEO_DENSE; j++) { if (f[j] === '') emptyDense++; else assert.match(f[j]!, /^-?\d+$/); }
    for (let t = 14; t < 40; t++) { if (f[t] === '') emptyCat++; else assert.match(f[t]!, /^[0-9a-f]{8}$/); }
  }
  assert.ok(emptyDense > 0 && emptyCat > 0, `empty fields: ${emptyDense} dense, ${emptyCat} categorical`);
  const tops: number[] = [];
  for (let t = 0; t < CRITEO_CATS; t++) {
    const counts = new Map<number, number>();
    for (const mb of batches) for (let i = 0; i < mb.size; i++) { const id = mb.cats[i * CRITEO_CATS + t]!; counts.set(id, (counts.get(id) ?? 0) + 1); }
    const [top, n] = [...counts].sort((x, y) => y[1] - x[1])[0]!;
    assert.ok(n > 20_000 * 0.08, `table ${t}: most frequent id seen ${n} times, not Zipf-like`);
    assert.ok(top < R);
    tops.push(top);
  }
  assert.ok(tops.filter((id) => id < 3).length <= 3, `frequent ids are scattered: ${tops}`);
});

test('gzip output reads the same as plain', async () => {
  const plain = join(dir, 'e.tsv'), gz = join(dir, 'e.tsv.gz');
  const a = await generateSynthetic({ out: plain, samples: 5000, seed: 3, rowsPerTable: 500 });
  const b = await generateSynthetic({ out: gz, samples: 5000, seed: 3, rowsPerTable: 500, gzip: true });
  assert.equal([...readFileSync(gz).subarray(0, 2)], [0x1f, 0x8b]);
  assert.ok(b.bytes < a.bytes);
  assert.equal({ ...b, out: '', metaPath: '', gzip: false, bytes: 0 }, { ...a, out: '', metaPath: '', bytes: 0 });
  const ra = await readAll(plain, 500), rb = await readAll(gz, 500);
  assert.equal(rb, ra);
});

test('other table sizes: ids in range, AUC and rate still calibrated', async () => {
  for (const rows of [1, 7, 100_003]) {
    const out = join(dir, `r${rows}.tsv`);
    const s = await generateSynthetic({ out, samples: 5000, seed: 5, rowsPerTable: rows });
    const { stats, batches } = await readAll(out, rows);
    assert.is(stats.bad, 0);
    assert.ok(batches.every((mb) => mb.cats.every((id) => id < rows)));
    assert.ok(s.positiveRate > 0.15 && s.positiveRate < 0.35, `rows ${rows}: rate ${s.positiveRate}`);
    if (rows > 1) assert.ok(s.plantedAuc > 0.7 && s.plantedAuc < 0.9, `rows ${rows}: AUC ${s.plantedAuc}`);
  }
});

test('bad options are refused with the reason', async () => {
  const base = { out: join(dir, 'x'), samples: 10, seed: 1, rowsPerTable: R };
  for (const [o, re] of [[{ samples: 0 }, /samples 0/], [{ rowsPerTable: 0 }, /rowsPerTable 0/], [{ seed: 1.5 }, /seed 1.5/]] as const) {
    try {
      await generateSynthetic({ ...base, ...o });
      assert.unreachable();
    } catch (e) { assert.match((e as Error).message, re); }
  }
  assert.not.ok(existsSync(join(dir, 'x')));
});

test('zipfSampler follows P(k) ~ k^-s', () => {
  const n = 50, s = 1.1, draws = 200_000;
  const sample = zipfSampler(n, s, mulberry32(1));
  const counts = new Float64Array(n + 1);
  for (let i = 0; i < draws; i++) { const k = sample(); assert.ok(Number.isInteger(k) && k >= 1 && k <= n); counts[k]++; }
  let norm = 0;
  for (let k = 1; k <= n; k++) norm += k ** -s;
  let chi2 = 0;
  for (let k = 1; k <= n; k++) { const want = (draws * k ** -s) / norm; chi2 += (counts[k]! - want) ** 2 / want; }
  // 49 degrees of freedom: mean 49, sd ~10; 100 is far in the tail.
  assert.ok(chi2 < 100, `chi2 ${chi2.toFixed(1)}`);
  const one = zipfSampler(1, s, mulberry32(2));
  assert.ok(Array.from({ length: 100 }, one).every((k) => k === 1));
});

test('plantedSamples: the file\'s ids, hottest ids first, in memory; deterministic per stream', async () => {
  const out = join(dir, 'p.tsv');
  await generateSynthetic({ out, samples: 20_000, seed: 5, rowsPerTable: R });
  const { batches } = await readAll(out);
  const count = (n: number, ids: (i: number, t: number) => number) => {
    const c = Array.from({ length: CRITEO_CATS }, () => new Map<number, number>());
    for (let i = 0; i < n; i++) for (let t = 0; t < CRITEO_CATS; t++) { const id = ids(i, t); c[t]!.set(id, (c[t]!.get(id) ?? 0) + 1); }
    return c;
  };
  const rows = batches.flatMap((mb) => Array.from({ length: mb.size }, (_, i) => mb.cats.subarray(i * CRITEO_CATS, (i + 1) * CRITEO_CATS)));
  const fromFile = count(rows.length, (i, t) => rows[i]![t]!);
  const next = plantedSamples(R, 5, 3);
  const s = { ids: new Uint32Array(CRITEO_CATS), dense: new Float32Array(CRITEO_DENSE), label: 0 };
  const mem: Uint32Array[] = [];
  let positives = 0;
  for (let i = 0; i < 20_000; i++) {
    next(s);
    mem.push(s.ids.slice());
    positives += s.label;
    assert.ok(s.dense.every(Number.isFinite));
  }
  assert.ok(mem.every((ids) => ids.every((id) => id < R)));
  const inMemory = count(mem.length, (i, t) => mem[i]![t]!);
  // The same model: each table's most frequent non-empty id is the same id in both, with a similar share.
  const top = (m: Map<number, number>) => [...m].filter(([id]) => id !== 0).sort((a, b) => b[1] - a[1])[0]!;
  for (let t = 0; t < CRITEO_CATS; t++) {
    const [fileId, fileN] = top(fromFile[t]!), [memId, memN] = top(inMemory[t]!);
    assert.is(memId, fileId, `table ${t}: hottest id`);
    assert.ok(Math.abs(memN - fileN) < 0.25 * fileN, `table ${t}: ${memN} vs ${fileN} occurrences`);
  }
  assert.ok(positives / 20_000 > 0.15 && positives / 20_000 < 0.35, `positive rate ${positives / 20_000}`);
  // Deterministic per (seed, stream); another stream draws other samples.
  const again = plantedSamples(R, 5, 3), other = plantedSamples(R, 5, 4);
  const a = { ...s, ids: new Uint32Array(CRITEO_CATS) }, b = { ...s, ids: new Uint32Array(CRITEO_CATS) };
  let same = 0;
  for (let i = 0; i < 100; i++) { again(a); other(b); assert.equal(a.ids, mem[i]); if (a.ids.every((x, k) => x === b.ids[k])) same++; }
  assert.ok(same < 50, `streams 3 and 4 agree on ${same} of 100 samples`);
  assert.throws(() => plantedSamples(0, 5), /rowsPerTable/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
