// Memory per row of a 1M-row, dim-64 SGD table, index, step counts and slab growth slack
// included, against the ideal dim * 4 * (1 + slots) = 256 bytes: at most 1.25x, both when the
// slabs grow on demand and when they are presized from expectedRows. Prints the figures.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TableStore } from '../src/server/table-store.ts';

const ROWS = 1_000_000, DIM = 64, BATCH = 1 << 16;

function fill(expectedRows?: number): TableStore {
  const s = new TableStore({ id: 1, name: 'big', dim: DIM, init: 'zeros', initScale: 0, seed: 1n, optimizer: 'sgd', hyper: {}, expectedRows });
  const keys = new BigUint64Array(BATCH);
  const words = new Uint32Array(keys.buffer);
  const out = new Float32Array(BATCH * DIM);
  for (let at = 0; at < ROWS; at += BATCH) {
    const n = Math.min(BATCH, ROWS - at);
    // Scattered 48-bit row ids, as hashed feature ids would be.
    for (let i = 0; i < n; i++) { words[2 * i] = Math.imul(at + i, 0x9e3779b1) >>> 0; words[2 * i + 1] = (at + i) & 0xffff; }
    s.pull(keys.subarray(0, n), out.subarray(0, n * DIM));
  }
  return s;
}

for (const expectedRows of [undefined, ROWS]) {
  test(`1M rows x dim 64 with sgd: bytes per row <= 1.25x ideal (${expectedRows ? 'presized' : 'grown on demand'})`, () => {
    const t0 = performance.now();
    const s = fill(expectedRows);
    const ms = performance.now() - t0;
    assert.is(s.rows, ROWS);
    const ratio = s.bytesPerRow() / s.idealBytesPerRow();
    console.log(`  ${expectedRows ? 'presized' : 'grown    '}: ${s.bytesPerRow().toFixed(1)} bytes/row, ideal ${s.idealBytesPerRow()}, ` +
      `ratio ${ratio.toFixed(3)}, slab capacity ${s.capacityRows} rows, ${(s.memoryBytes() / 2 ** 20).toFixed(0)} MiB, filled in ${ms.toFixed(0)} ms`);
    assert.ok(ratio <= 1.25, `bytes per row ${s.bytesPerRow()} is ${ratio.toFixed(3)}x the ideal`);
  });
}

test.run();
