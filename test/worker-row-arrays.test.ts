// The row arrays a worker's pulls write into (src/worker/row-arrays.ts), and a pull `into` one:
// an array is never lent twice at once, goes back only after the pull writing it has settled, is
// reused once back; a pull into a stale array returns exactly the rows a fresh pull returns,
// across 2 servers (rows scattered from each server's part) and on 1 (the reply's own view); a
// pull with `at` writes each row at its place and no other (SSP's early pulls and re-pulls).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lent, RowArrays } from '../src/worker/row-arrays.ts';
import { startCluster, table, keysOf } from './helpers/cluster.ts';

test('an array is lent to one holder at a time, is big enough, and is reused once given back', () => {
  const arrays = new RowArrays(2);
  const a = arrays.lend(0, 100), b = arrays.lend(0, 100), c = arrays.lend(1, 100);
  assert.ok(a.length >= 100 && b.length >= 100 && c.length >= 100);
  assert.ok(a !== b && a !== c && b !== c, 'three lends, three arrays');
  arrays.giveBack(0, a);
  assert.is(arrays.lend(1, 100) === a, false, 'an array of table 0 is not lent to table 1');
  assert.is(arrays.lend(0, 90), a, 'given back: lent again');
  arrays.giveBack(0, b);
  const big = arrays.lend(0, 10_000);
  assert.ok(big !== b && big.length >= 10_000, 'too small for the rows: a new one');
});

test('a step\'s arrays go back only after the pulls writing them settle, failed ones too', async () => {
  const arrays = new RowArrays(1);
  const lent = new Lent(arrays);
  let finish!: () => void, fail!: (e: Error) => void;
  const slow = lent.fill(0, 64, (into) => new Promise<Float32Array>((resolve) => { finish = () => resolve(into); }));
  const bad = lent.fill(0, 64, () => new Promise<Float32Array>((_, reject) => { fail = reject; }));
  bad.catch(() => {});
  assert.is(await Promise.race([slow, Promise.resolve(null)]), null, 'the slow pull is still running');
  lent.giveBack();
  await new Promise((r) => setImmediate(r));
  const meanwhile = [arrays.lend(0, 64), arrays.lend(0, 64)];
  finish();
  fail(new Error('link dropped'));
  const written = await slow;
  assert.ok(!meanwhile.includes(written), 'an array a pull still writes is not lent again');
  await new Promise((r) => setImmediate(r));
  const again = [arrays.lend(0, 64), arrays.lend(0, 64)];
  assert.ok(again.includes(written), 'back once its pull settled');
});

for (const servers of [2, 1]) {
  test(`a pull into a stale array returns the rows a fresh pull returns (${servers} server${servers > 1 ? 's' : ''})`, async () => {
    const c = await startCluster({ servers });
    try {
      const w = await c.client('w0');
      await w.declareTables([table({ id: 1, dim: 5, init: 'uniform', initScale: 0.5, optimizer: 'sgd' })]);
      const keys = keysOf(...Array.from({ length: 300 }, (_, k) => k * 104729 + 7));
      const { order, keys: grouped } = w.groupByOwner(1, keys);
      const fresh = await w.pull(1, grouped);
      const into = new Float32Array(keys.length * 5 + 17).fill(NaN);
      const got = await w.pull(1, grouped, { into });
      assert.equal(Array.from(got), Array.from(fresh), 'same rows');
      assert.is(got.length, keys.length * 5);
      if (servers > 1) {
        assert.ok(order !== null, 'two servers: the keys were grouped by owner');
        assert.is(got.buffer, into.buffer, 'written into the array given');
        assert.ok(Number.isNaN(into[keys.length * 5]!), 'nothing written past the rows');
      }
      const refused = await w.pull(1, grouped, { into: new Float32Array(10) }).then(() => null, (e: Error) => e);
      assert.match(String(refused?.message), /into has 10 floats for 300 rows of dim 5/);
    } finally { await c.close(); }
  });
}

for (const servers of [2, 1]) {
  test(`a pull with \`at\` writes each row at its place and nothing else (${servers} server${servers > 1 ? 's' : ''})`, async () => {
    const c = await startCluster({ servers });
    try {
      const w = await c.client('w0');
      await w.declareTables([table({ id: 1, dim: 5, init: 'uniform', initScale: 0.5, optimizer: 'sgd' })]);
      const { keys: grouped } = w.groupByOwner(1, keysOf(...Array.from({ length: 300 }, (_, k) => k * 104729 + 7)));
      const all = await w.pull(1, grouped);
      // Every third position (as SSP's early pull leaves a step's late rows out), into a stale array.
      const at = Int32Array.from({ length: 100 }, (_, k) => 3 * k + 1);
      const into = new Float32Array(300 * 5).fill(NaN);
      const got = await w.pull(1, w.keysAt(1, grouped, at), { into, at });
      assert.is(got, into, 'the array given');
      for (let j = 0; j < 300; j++) {
        const row = Array.from(into.subarray(j * 5, j * 5 + 5));
        if (j % 3 === 1) assert.equal(row, Array.from(all.subarray(j * 5, j * 5 + 5)), `row ${j} pulled to its place`);
        else assert.ok(row.every(Number.isNaN), `row ${j} untouched`);
      }
      // Positions out of order (not a subsequence): still each row to its place.
      const back = Int32Array.of(7, 2), two = new Float32Array(10 * 5);
      await w.pull(1, w.keysAt(1, grouped, back), { into: two, at: back });
      assert.equal(Array.from(two.subarray(35, 40)), Array.from(all.subarray(35, 40)));
      assert.equal(Array.from(two.subarray(10, 15)), Array.from(all.subarray(10, 15)));
      const refusal = (o: { into?: Float32Array; at: Int32Array }) => w.pull(1, grouped.subarray(0, 2), o).then(() => null, (e: Error) => e.message);
      assert.match(String(await refusal({ at: Int32Array.of(0, 1) })), /`at` places rows in `into`; pass both/);
      assert.match(String(await refusal({ into: new Float32Array(10), at: Int32Array.of(0) })), /at has 1 positions for 2 keys/);
      assert.match(String(await refusal({ into: new Float32Array(10), at: Int32Array.of(0, 2) })), /at\[1\] = 2 is outside into \(2 rows of dim 5\)/);
      assert.match(String(await refusal({ into: new Float32Array(10), at: Int32Array.of(1, 1) })), /at\[1\] = 1 is a row already placed/);
    } finally { await c.close(); }
  });
}

test.run();
