// The allreduce benchmark's raw-ring baseline (bench/raw-ring.ts): W processes each sending a
// rank's bytes round a ring at once. It must finish every case (it once hung at W = 4 when a
// neighbour's first rep arrived before a rank had its command and was counted against the wrong
// case), report what it measured as finite positive numbers, and carry exactly the bytes asked:
// every rank has received 2(W-1)/W of each case's size per rep (warm-up included), no more and no
// less, when it answers; also with the receiving socket in a worker thread (bench/raw-ring-threads.ts).
// No timing assertions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runRawRing } from '../bench/raw-ring.ts';

const KiB = 1024;

for (const [w, readerThread] of [[2, false], [3, false], [4, false], [2, true], [4, true]] as const) {
  test(`raw ring W = ${w}${readerThread ? ', receiving in a worker thread' : ''}: every case finishes, several in a row, with the bytes of a rank`, async () => {
    // Small first, larger next, then small again: a fast neighbour starts each next case early.
    const cases = [{ bytes: 64 * KiB, reps: 3 }, { bytes: 1024 * KiB, reps: 3 }, { bytes: 96 * KiB, reps: 5 }];
    const out = await runRawRing(w, cases, 32 * KiB, 30_000, { readerThread }); // a hang fails as 'no answer within 30000 ms'
    assert.equal([...out.keys()], cases.map((c) => c.bytes));
    let owed = 0;
    for (const c of cases) {
      const r = out.get(c.bytes)!;
      for (const k of ['seconds', 'perLinkGBps'] as const) assert.ok(Number.isFinite(r[k]) && r[k] > 0, `${k} = ${r[k]} for ${c.bytes} bytes`);
      for (const k of ['userMs', 'sysMs'] as const) assert.ok(Number.isFinite(r[k]) && r[k] >= 0, `${k} = ${r[k]}`);
      owed += (c.reps + 1) * Math.round((2 * (w - 1) / w) * c.bytes);
      assert.equal(r.receivedTotal, { min: owed, max: owed }, `bytes received by every rank after the ${c.bytes}-byte case`);
    }
  });
}

test.run();
