// The float64 DLRM the GPU model is checked against is itself checked here: its gradients
// (dense parameters and embedding rows) equal central finite differences of its loss.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dlrmCpuStep } from './model-dlrm-cpu.ts';
import { dlrmLayers, type DlrmConfig } from '../src/model/dlrm.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { randomFloats } from './helpers/random.ts';

const cfg: DlrmConfig = { numDense: 3, numTables: 2, dim: 4, bottom: [3, 5, 4], top: [6, 1], rowsPerTable: 10 };
const B = 5;
const denseLen = dlrmLayers(cfg).reduce((a, L) => a + L.outDim * L.inDim + L.outDim, 0);
// Biases shifted away from 0 so no ReLU input sits on its kink (FD is invalid there).
const dense = Float64Array.from(randomFloats(denseLen, 11), (v) => v * 0.6 + 0.05);
const x = Float64Array.from(randomFloats(B * 3, 12), (v) => v + 1.2);
const labels = Float64Array.from({ length: B }, (_, b) => b % 2);
const ids = [Uint32Array.from([1, 3, 1, 7, 0]), Uint32Array.from([2, 2, 9, 4, 2])];
const preps = ids.map((i) => prepareTable({ ids: i }, B));
const rows = preps.map((p, t) => Float64Array.from(randomFloats(p.unique.length * cfg.dim, 20 + t), (v) => v * 0.5));

const loss = (d: Float64Array, r: Float64Array[]) => dlrmCpuStep(cfg, d, x, labels, B, preps.map((p, t) => ({ prep: p, rows: r[t]! }))).loss;

test('dense-parameter gradients equal central finite differences', () => {
  const g = dlrmCpuStep(cfg, dense, x, labels, B, preps.map((p, t) => ({ prep: p, rows: rows[t]! }))).denseGrads;
  const h = 1e-6;
  for (let i = 0; i < denseLen; i++) {
    const p = dense.slice(); p[i]! += h;
    const m = dense.slice(); m[i]! -= h;
    const fd = (loss(p, rows) - loss(m, rows)) / (2 * h);
    assert.ok(Math.abs(fd - g[i]!) <= 1e-7 + 1e-5 * Math.abs(fd), `dense[${i}]: analytic ${g[i]}, fd ${fd}`);
  }
});

test('embedding-row gradients (one per unique row) equal central finite differences', () => {
  const g = dlrmCpuStep(cfg, dense, x, labels, B, preps.map((p, t) => ({ prep: p, rows: rows[t]! }))).tableGrads;
  const h = 1e-6;
  rows.forEach((r, t) => {
    for (let i = 0; i < r.length; i++) {
      const rp = rows.map((a) => a.slice()); rp[t]![i]! += h;
      const rm = rows.map((a) => a.slice()); rm[t]![i]! -= h;
      const fd = (loss(dense, rp) - loss(dense, rm)) / (2 * h);
      assert.ok(Math.abs(fd - g[t]![i]!) <= 1e-7 + 1e-5 * Math.abs(fd), `table ${t} value ${i}: analytic ${g[t]![i]}, fd ${fd}`);
    }
  });
});

test.run();
