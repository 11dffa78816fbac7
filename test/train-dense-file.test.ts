// A foreign dense.safetensors (PyTorch, numpy) on --resume: checked by name, shape and dtype
// before anything is loaded. A transposed weight with the right element count, a misspelled
// name and a missing parameter are refused with messages that name the tensor and what the
// model expects; --partial-dense allows the missing one and reports it as initialised fresh.
// Real files through the real loader.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { writeSafetensors, type Tensor } from '../src/checkpoint/index.ts';
import { loadTrainingCheckpoint } from '../src/train/checkpoint.ts';
import { tmp, writeRandomCriteo, tinyConfig } from './helpers/train.ts';

const root = tmp();
const cfg = tinyConfig(writeRandomCriteo(join(root, 'd.tsv'), 10, 1));
// A layout like the model's: a [3, 2] weight ([out, in]) and a [3] bias.
const layout = [
  { name: 'bottom.0.weight', offset: 0, size: 6, shape: [3, 2] },
  { name: 'bottom.0.bias', offset: 6, size: 3, shape: [3] },
];
const initial = Float32Array.from({ length: 9 }, (_, i) => -1 - i);
const W = Float32Array.of(1, 2, 3, 4, 5, 6), b = Float32Array.of(7, 8, 9);
let n = 0;

async function dirWith(tensors: Record<string, Tensor>): Promise<string> {
  const dir = join(root, `ckpt-${n++}`);
  mkdirSync(dir);
  await writeSafetensors(join(dir, 'dense.safetensors'), tensors);
  return dir;
}

async function refusal(dir: string, partial = false): Promise<Error & { code?: string }> {
  try {
    await loadTrainingCheckpoint(dir, layout, { ...cfg, partialDense: partial }, initial, 'dlrm');
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('loaded, expected a refusal');
}

test('the declared names and shapes load exactly', async () => {
  const dir = await dirWith({ 'dense.bottom.0.weight': { dtype: 'F32', shape: [3, 2], data: W }, 'dense.bottom.0.bias': { dtype: 'F32', shape: [3], data: b } });
  const got = await loadTrainingCheckpoint(dir, layout, cfg, initial, 'dlrm');
  assert.equal(Array.from(got.dense!), [...W, ...b]);
  assert.equal(got.fresh, []);
});

test('a transposed weight with the right element count is refused, naming the tensor, both shapes and the layout', async () => {
  const e = await refusal(await dirWith({ 'dense.bottom.0.weight': { dtype: 'F32', shape: [2, 3], data: W }, 'dense.bottom.0.bias': { dtype: 'F32', shape: [3], data: b } }));
  assert.is(e.code, 'dense-transposed');
  for (const s of ['dense.bottom.0.weight', '[2, 3]', '[3, 2]', 'transposed', '[out, in]']) assert.ok(e.message.includes(s), `${s} in: ${e.message}`);
});

test('another shape with the right element count is refused with both shapes', async () => {
  const e = await refusal(await dirWith({ 'dense.bottom.0.weight': { dtype: 'F32', shape: [6], data: W }, 'dense.bottom.0.bias': { dtype: 'F32', shape: [3], data: b } }));
  assert.is(e.code, 'dense-shape');
  for (const s of ['dense.bottom.0.weight', '[6]', '[3, 2]']) assert.ok(e.message.includes(s), `${s} in: ${e.message}`);
});

test('a misspelled name is refused, listing the expected names (also with --partial-dense)', async () => {
  const dir = await dirWith({ 'dense.bottom.0.wieght': { dtype: 'F32', shape: [3, 2], data: W }, 'dense.bottom.0.bias': { dtype: 'F32', shape: [3], data: b } });
  for (const partial of [false, true]) {
    const e = await refusal(dir, partial);
    assert.is(e.code, 'dense-unknown');
    for (const s of ['dense.bottom.0.wieght', 'dense.bottom.0.weight [3, 2]', 'dense.bottom.0.bias [3]']) assert.ok(e.message.includes(s), `${s} in: ${e.message}`);
  }
});

test('a missing parameter is refused; --partial-dense starts it fresh and reports it', async () => {
  const dir = await dirWith({ 'dense.bottom.0.weight': { dtype: 'F32', shape: [3, 2], data: W } });
  const e = await refusal(dir);
  assert.is(e.code, 'dense-missing');
  for (const s of ['dense.bottom.0.bias', '--partial-dense']) assert.ok(e.message.includes(s), `${s} in: ${e.message}`);
  const got = await loadTrainingCheckpoint(dir, layout, { ...cfg, partialDense: true }, initial, 'dlrm');
  assert.equal(got.fresh, ['bottom.0.bias']);
  assert.equal(Array.from(got.dense!), [...W, ...initial.slice(6)]);
});

test('optimizer slots are checked like their parameters', async () => {
  const dir = await dirWith({
    'dense.bottom.0.weight': { dtype: 'F32', shape: [3, 2], data: W }, 'dense.bottom.0.bias': { dtype: 'F32', shape: [3], data: b },
    'dense.bottom.0.weight.slot.accum': { dtype: 'F32', shape: [2, 3], data: W }, 'dense.bottom.0.bias.slot.accum': { dtype: 'F32', shape: [3], data: b },
  });
  assert.is((await refusal(dir)).code, 'dense-transposed');
});

test.run();
