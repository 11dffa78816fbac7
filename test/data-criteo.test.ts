// The Criteo reader on a hand-written file in the real layout: exact values (dense log transform,
// hex ids mod rowsPerTable, also 16-digit ids past 2^53, checked against BigInt), empty fields,
// '\r\n', bad lines counted with their line numbers and skipped (or fatal), gzip read identically,
// sharding partitions the lines, the eval split does not depend on the shard count, batch sizes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { mulberry32 } from '../src/util/hash.ts';
import { CRITEO_CATS, CRITEO_DENSE, CriteoReader, parseCriteoLine, readCriteo, criteoLines, type Minibatch } from '../src/data/criteo.ts';

const dir = mkdtempSync(join(tmpdir(), 'hybridps-criteo-'));
const R = 1000;

function row(label: string, dense: string[], cats: string[]): string {
  assert.is(dense.length, CRITEO_DENSE);
  assert.is(cats.length, CRITEO_CATS);
  return [label, ...dense, ...cats].join('\t');
}

const DENSE_A = ['0', '1', '5', '-3', '', '100', '2', '3', '4', '5', '6', '7', '123456789'];
const CATS_A = ['68fd1e64', '', 'ffffffffffffffff', '8000000000000001', 'ABCDEF12', '0',
  ...Array.from({ length: 20 }, (_, k) => (0x1000 + k * 7919).toString(16))];
const DENSE_B = Array.from({ length: 13 }, () => '');
const CATS_B = Array.from({ length: 26 }, (_, k) => (k % 2 ? '' : '05db9164'));

/** Lines of the sample file; numbers in comments are 1-based line numbers. */
const LINES = [
  row('1', DENSE_A, CATS_A), //                                  1 good
  row('0', DENSE_B, CATS_B) + '\r', //                           2 good, \r\n
  ['0', ...DENSE_A.slice(0, 10)].join('\t'), //                  3 too few fields
  '', //                                                         4 empty: not a line for index, sharding or errors
  row('0', ['1.5', ...DENSE_A.slice(1)], CATS_A), //             5 non-integer dense
  row('1', DENSE_A, ['zz12', ...CATS_A.slice(1)]), //            6 bad hex
  row('2', DENSE_A, CATS_A), //                                  7 label 2
  row('1', DENSE_B, CATS_B) + '\r', //                           8 good
];
const BAD = [{ line: 3, re: /fields/ }, { line: 5, re: /I1 .*"1\.5".* not an integer/ }, { line: 6, re: /C1 .*"zz12"/ }, { line: 7, re: /label "2"/ }];

function expectedA(): { dense: number[]; cats: number[] } {
  const dense = DENSE_A.map((s) => Math.fround(Math.log1p(Math.max(s === '' ? 0 : Number(s), 0))));
  const cats = CATS_A.map((h) => (h === '' ? 0 : Number(BigInt(`0x${h}`) % BigInt(R))));
  return { dense, cats };
}

async function collect(path: string, opts: ConstructorParameters<typeof CriteoReader>[1], B = 4): Promise<{ reader: CriteoReader; batches: Minibatch[] }> {
  const reader = readCriteo(path, opts);
  const batches: Minibatch[] = [];
  for await (const mb of reader.batches(B)) batches.push(mb);
  return { reader, batches };
}

const plain = join(dir, 'sample.txt');
const gz = join(dir, 'sample.data'); // gzip told by magic bytes, not by the name
writeFileSync(plain, LINES.join('\n') + '\n');
writeFileSync(gz, gzipSync(Buffer.from(LINES.join('\n') + '\n')));

test('parseCriteoLine: exact values, empty fields, 16-digit hex ids', () => {
  const dense = new Float32Array(2 * CRITEO_DENSE).fill(NaN), cats = new Uint32Array(2 * CRITEO_CATS).fill(777777);
  assert.is(parseCriteoLine(LINES[0]!, R, dense, cats, CRITEO_DENSE, CRITEO_CATS), 1); // into slot 1
  const e = expectedA();
  assert.equal(Array.from(dense.subarray(CRITEO_DENSE)), e.dense);
  assert.equal(Array.from(cats.subarray(CRITEO_CATS)), e.cats);
  assert.ok(Number.isNaN(dense[0]!), 'slot 0 untouched');
  // The values that would go wrong through parseInt (past 2^53) or on empty fields.
  assert.is(cats[CRITEO_CATS + 2], 615); // 0xffffffffffffffff = 18446744073709551615
  assert.is(cats[CRITEO_CATS + 3], 809); // 0x8000000000000001 = 9223372036854775809 (parseInt: ...808)
  assert.is(cats[CRITEO_CATS + 1], 0); // empty
  assert.is(dense[CRITEO_DENSE + 3], 0); // -3 clamps to 0
  assert.is(dense[CRITEO_DENSE + 4], 0); // empty
  assert.is(dense[CRITEO_DENSE + 2], Math.fround(Math.log(6)));
  assert.is(parseCriteoLine(LINES[1]!, R, dense, cats, 0, 0), 0);
  assert.equal(Array.from(dense.subarray(0, CRITEO_DENSE)), new Array(13).fill(0));
  assert.is(cats[0], 0x05db9164 % R);
  assert.is(cats[1], 0);
  // A large table: ids mod 2^32 exactly.
  assert.is(parseCriteoLine(LINES[0]!, 2 ** 32, dense, cats, 0, 0), 1);
  assert.is(cats[2], 0xffffffff);
  assert.is(cats[3], 1);
});

test('parseCriteoLine: ids equal BigInt hex mod m for random hex of 1-16 digits', () => {
  const rand = mulberry32(5);
  const dense = new Float32Array(CRITEO_DENSE), cats = new Uint32Array(CRITEO_CATS);
  for (const m of [1, 2, 1000, 65537, 1_000_003, 2 ** 31 - 1, 2 ** 32 - 5, 2 ** 32]) {
    for (let rep = 0; rep < 40; rep++) {
      const hex = Array.from({ length: CRITEO_CATS }, (_, t) => {
        const len = 1 + ((rep + t) % 16);
        return Array.from({ length: len }, () => '0123456789abcdefABCDEF'[Math.floor(rand() * 22)]).join('');
      });
      assert.is(parseCriteoLine(row('1', DENSE_A, hex), m, dense, cats, 0, 0), 1);
      assert.equal(Array.from(cats), hex.map((h) => Number(BigInt(`0x${h}`) % BigInt(m))), `m = ${m}`);
    }
  }
});

test('parseCriteoLine: every kind of bad line says why', () => {
  const d = new Float32Array(CRITEO_DENSE), c = new Uint32Array(CRITEO_CATS);
  const why = (line: string) => parseCriteoLine(line, R, d, c, 0, 0);
  assert.match(String(why(LINES[2]!)), /expected 40 tab-separated fields.*got 11/);
  assert.match(String(why(LINES[0]!.slice(2))), /no label column/); // 39 fields, as Kaggle's test.txt
  assert.match(String(why(LINES[0]! + '\t')), /got 41/);
  assert.match(String(why(LINES[4]!)), /dense feature I1 "1\.5" is not an integer/);
  assert.match(String(why(row('0', [...DENSE_A.slice(0, 12), '1e3'], CATS_A))), /I13 "1e3"/);
  assert.match(String(why(row('0', [' 1', ...DENSE_A.slice(1)], CATS_A))), /I1 " 1"/);
  assert.match(String(why(row('0', ['-', ...DENSE_A.slice(1)], CATS_A))), /I1 "-"/);
  assert.match(String(why(LINES[5]!)), /categorical feature C1 "zz12" is not a hex id/);
  assert.match(String(why(row('0', DENSE_A, [...CATS_A.slice(0, 25), '1'.repeat(17)]))), /C26 .* at most 16 digits/);
  assert.match(String(why(row('0', DENSE_A, [...CATS_A.slice(0, 25), '-1']))), /C26 "-1"/);
  assert.match(String(why(LINES[6]!)), /label "2" is not 0 or 1/);
  assert.match(String(why(row('', DENSE_A, CATS_A))), /label "" is not 0 or 1/);
  assert.match(String(why('')), /got 1/);
  assert.throws(() => parseCriteoLine(LINES[0]!, 0, d, c, 0, 0), /rowsPerTable 0/);
});

test('reader: values, bad lines counted with line numbers and skipped', async () => {
  const { reader, batches } = await collect(plain, { rowsPerTable: R });
  assert.is(batches.length, 1);
  const mb = batches[0]!;
  assert.is(mb.size, 3);
  assert.is(mb.firstLine, 1);
  assert.equal(Array.from(mb.labels), [1, 0, 1]);
  const e = expectedA();
  assert.equal(Array.from(mb.dense.subarray(0, CRITEO_DENSE)), e.dense);
  assert.equal(Array.from(mb.cats.subarray(0, CRITEO_CATS)), e.cats);
  assert.equal(Array.from(mb.cats.subarray(2 * CRITEO_CATS, 3 * CRITEO_CATS)), CATS_B.map((h) => (h ? 0x05db9164 % R : 0)));
  assert.is(mb.dense.length, 3 * CRITEO_DENSE);
  assert.is(mb.cats.length, 3 * CRITEO_CATS);
  assert.equal({ lines: reader.stats.lines, samples: reader.stats.samples, bad: reader.stats.bad }, { lines: 7, samples: 3, bad: 4 });
  assert.equal(reader.stats.badLines.map((b) => b.line), BAD.map((b) => b.line));
  BAD.forEach((b, i) => assert.match(reader.stats.badLines[i]!.why, b.re));
  const capped = await collect(plain, { rowsPerTable: R, maxBadReported: 2 });
  assert.is(capped.reader.stats.bad, 4);
  assert.equal(capped.reader.stats.badLines.map((b) => b.line), [3, 5]);
});

test("reader: onBad 'fatal' throws naming file, line and reason", async () => {
  try {
    await collect(plain, { rowsPerTable: R, onBad: 'fatal' });
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.instance(e, Error);
    assert.match((e as Error).message, `${plain}:3: expected 40 tab-separated fields`);
  }
});

test('reader: the gzip copy reads identically', async () => {
  const a = await collect(plain, { rowsPerTable: R }), b = await collect(gz, { rowsPerTable: R });
  assert.equal(b.batches, a.batches);
  assert.equal(b.reader.stats, a.reader.stats);
});

test('reader: rejects bad options', () => {
  assert.throws(() => readCriteo(plain, { rowsPerTable: R, shard: { index: 3, count: 3 } }), /shard index 3/);
  assert.throws(() => readCriteo(plain, { rowsPerTable: R, split: { every: 1, take: 'train' } }), /split every 1/);
  assert.throws(() => readCriteo(plain, { rowsPerTable: 1.5 }), /rowsPerTable 1.5/);
});

// A bigger file where C1 holds the line's index (ids mod 2^20 = the index), with a blank line and
// a bad line in it, to check sharding, splitting and batching by identity.
const N = 103;
const big = join(dir, 'big.txt');
{
  const out: string[] = [];
  for (let i = 0; i < N; i++) {
    if (i === 40) out.push(''); // blank lines do not count
    out.push(i === 57 ? row('1', DENSE_A, ['nothex', ...CATS_A.slice(1)]) : row(String(i % 2), DENSE_B, [i.toString(16), ...CATS_B.slice(1)]));
  }
  writeFileSync(big, out.join('\r\n'));
}
async function ids(opts: Omit<ConstructorParameters<typeof CriteoReader>[1], 'rowsPerTable'>, B = 8): Promise<number[]> {
  const { batches } = await collect(big, { rowsPerTable: 1 << 20, ...opts }, B);
  return batches.flatMap((mb) => Array.from({ length: mb.size }, (_, k) => mb.cats[k * CRITEO_CATS]!));
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test('criteoLines: index counts non-empty lines, lineNo physical lines', async () => {
  const seen: [number, number][] = [];
  for await (const block of criteoLines(big)) for (const l of block) if (l.index >= 39 && l.index <= 41) seen.push([l.index, l.lineNo]);
  assert.equal(seen, [[39, 40], [40, 42], [41, 43]]);
});

test('sharding over 3 workers partitions the lines', async () => {
  const all = await ids({});
  assert.equal(all, range(N).filter((i) => i !== 57));
  const shards = await Promise.all([0, 1, 2].map((index) => ids({ shard: { index, count: 3 } })));
  shards.forEach((s, index) => assert.ok(s.every((i) => i % 3 === index), `shard ${index} holds only its lines`));
  const union = shards.flat().sort((a, b) => a - b);
  assert.equal(union, all, 'union is every line, each once');
});

test('train/eval split is the same for 1 and 3 shards', async () => {
  for (const take of ['train', 'eval'] as const) {
    const one = await ids({ split: { every: 10, take } });
    assert.equal(one, range(N).filter((i) => i !== 57 && (i % 10 === 9) === (take === 'eval')));
    const three = (await Promise.all([0, 1, 2].map((index) => ids({ shard: { index, count: 3 }, split: { every: 10, take } })))).flat().sort((a, b) => a - b);
    assert.equal(three, one, take);
  }
});

test('batches: full sizes, a short last batch, firstLine', async () => {
  const { reader, batches } = await collect(big, { rowsPerTable: 1 << 20 }, 25);
  assert.equal(batches.map((b) => b.size), [25, 25, 25, 25, 2]);
  assert.equal(batches.map((b) => b.firstLine), [1, 26, 52, 78, 103]); // blank line 41, bad line 59
  const last = batches[4]!;
  assert.is(last.labels.length, 2);
  assert.is(last.dense.length, 2 * CRITEO_DENSE);
  assert.is(last.cats.length, 2 * CRITEO_CATS);
  assert.equal({ lines: reader.stats.lines, samples: reader.stats.samples, bad: reader.stats.bad }, { lines: N, samples: N - 1, bad: 1 });
  assert.equal(reader.stats.badLines, [{ line: 59, why: reader.stats.badLines[0]!.why }]);
  const exact = await collect(big, { rowsPerTable: 1 << 20, shard: { index: 0, count: 3 } }, 7);
  assert.equal(exact.batches.map((b) => b.size), [7, 7, 7, 7, 6]); // 35 lines, one of them bad (index 57)
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
