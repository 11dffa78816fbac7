// A short training run (separate processes: scheduler, 2 servers, 2 GPU workers on lavapipe;
// hybrid BSP) with each row format on the wire: it trains (finite, falling loss; the workers'
// dense parameters stay bit-identical), the pull and push bytes shrink exactly as 8 + 2*dim
// against 8 + 4*dim bytes a row (the same rows travel: BSP pulls do not depend on the values),
// and only f16 halves the allreduce (bf16 leaves it f32); bf16 and f32 reach the same loss and
// held-out AUC within a bound the rounding explains (0.02; measured 0.003 and 0.0001).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { runTraining } from '../src/launch/train-run.ts';
import { generateSynthetic } from '../src/data/synthetic.ts';
import type { TrainSummary } from '../src/launch/summary.ts';
import type { RowFormat } from '../src/wire/row-format.ts';
import { tmp, tinyConfig } from './helpers/train.ts';

const dir = tmp();
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;
const ROWS = 50, DIM = 4, STEPS = 60;
const data = join(dir, 'synthetic.tsv');
await generateSynthetic({ out: data, samples: 20_000, seed: 4, rowsPerTable: ROWS });
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

const runs = new Map<RowFormat, TrainSummary>();
async function run(wireRows: RowFormat): Promise<TrainSummary> {
  const cfg = tinyConfig(data, {
    model: { ...tinyConfig(data).model, numTables: 26, dim: DIM, bottom: [13, 16, DIM], top: [16, 1], rowsPerTable: ROWS },
    workers: 2, servers: 2, batch: 128, steps: STEPS, mode: 'hybrid', evalSamples: 500,
    optimizer: { emb: 'adagrad', dense: 'adagrad' }, lr: { emb: 0.1, dense: 0.1 }, wireRows,
  });
  const s = await runTraining(cfg, { out: quiet });
  runs.set(wireRows, s);
  return s;
}

for (const format of ['f32', 'bf16', 'f16'] as const) {
  test(`hybrid BSP, 2 workers, rows as ${format}: trains, dense parameters identical on both workers`, async () => {
    const s = await run(format);
    assert.is(s.steps, STEPS);
    assert.is(s.wireRows, format, 'the summary names the format');
    const losses = s.history.loss;
    assert.ok(losses.every(Number.isFinite), 'finite losses');
    assert.ok(mean(losses.slice(-10)) < mean(losses.slice(0, 10)), `loss fell: ${mean(losses.slice(0, 10)).toFixed(4)} -> ${mean(losses.slice(-10)).toFixed(4)}`);
    assert.ok(s.auc > 0.65, `held-out AUC ${s.auc} (about 0.73 when it learns)`);
    assert.is(new Set(s.results.map((r) => r.denseHash)).size, 1, 'both workers hold the same dense parameters');
  });
}

test('bytes: rows of 8 + 2*dim bytes under bf16 and f16 against 8 + 4*dim under f32; the allreduce narrows only under f16', () => {
  const [f32, bf16, f16] = (['f32', 'bf16', 'f16'] as const).map((f) => runs.get(f)!);
  for (const k of ['pull', 'push'] as const) {
    assert.ok(bf16!.bytes[k] > 0, `${k} bytes counted`);
    assert.is(bf16!.bytes[k], f16!.bytes[k], `${k}: bf16 and f16 move the same bytes`);
    // f32 / bf16 = (8 + 4d) / (8 + 2d), exactly: the same rows, values 4 against 2 bytes.
    assert.is(f32!.bytes[k] * (8 + 2 * DIM), bf16!.bytes[k] * (8 + 4 * DIM), `${k}: f32 ${f32!.bytes[k]} vs bf16 ${bf16!.bytes[k]} bytes`);
  }
  assert.is(bf16!.bytes.allreduce, f32!.bytes.allreduce, 'bf16 rows leave the dense allreduce at f32');
  assert.ok(f16!.bytes.allreduce < 0.51 * f32!.bytes.allreduce, `f16 halves the allreduce (${f16!.bytes.allreduce} of ${f32!.bytes.allreduce})`);
});

test('bf16 rows train to the f32 run\'s loss and AUC within what the rounding explains', () => {
  const [f32, bf16] = [runs.get('f32')!, runs.get('bf16')!];
  // The same data and seed: the runs differ only by 2^-8-relative roundings of rows and gradients.
  const d = Math.abs(mean(bf16.history.loss.slice(-10)) - mean(f32.history.loss.slice(-10)));
  assert.ok(d < 0.02, `last losses differ by ${d.toFixed(4)}`); // measured 0.003
  assert.ok(Math.abs(bf16.auc - f32.auc) < 0.02, `held-out AUC ${bf16.auc.toFixed(4)} against ${f32.auc.toFixed(4)}`); // measured 0.0001
  assert.ok(bf16.history.loss.some((v, i) => v !== f32.history.loss[i]), 'the rounding is real: some loss differs from the f32 run');
});

test.run();
