// A sample names its model module (sample.json "module"), and the pipeline trains whatever it
// names: `hybridps launch samples/custom-fm` (a factorization machine with its own WGSL, nothing
// of it in src/) trains on generated data and reaches a held-out AUC well above chance, writes a
// checkpoint that resumes onto another server count, and `compare` runs both modes. Bad module
// references fail before any process starts, saying what is wrong. Real CLI processes, real
// servers and workers on lavapipe.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tmp } from './helpers/train.ts';
import { readSafetensorsHeader } from '../src/checkpoint/safetensors.ts';

const run = promisify(execFile);
const MAIN = 'src/cli/main.ts';
const dir = tmp('hps-models-');
const data = join(dir, 'd.tsv');
const common = ['--data', data, '--rows-per-table', '50', '--batch', '64', '--eval-samples', '300'];

async function cli(args: string[]): Promise<{ json: any; stderr: string }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  // The timeout is a hang guard: a cluster of tsx processes starts slowly on a busy machine.
  const r = await run(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
  return { json: JSON.parse(r.stdout.trim().split('\n').at(-1)!), stderr: r.stderr };
}

async function failure(args: string[]): Promise<string> {
  try { await run(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 120_000 }); } catch (e) { return String((e as { stderr: string }).stderr); }
  throw new Error(`${args.join(' ')} succeeded; expected an error`);
}

test('gen-data writes the planted set', async () => {
  const { json } = await cli(['gen-data', '--out', data, '--samples', '6000', '--seed', '3', '--rows-per-table', '50', '--json']);
  assert.ok(json.plantedAuc > 0.7, `planted AUC ${json.plantedAuc}`);
  // With a sample, its model's rows per table and its synthetic seed are the defaults.
  const bySample = (await cli(['gen-data', 'samples/custom-fm', '--out', join(dir, 'fm.tsv'), '--samples', '300', '--json'])).json;
  assert.equal([bySample.rowsPerTable, bySample.seed, bySample.samples], [200, 7, 300]);
});

test('launch samples/custom-fm trains the FM and checkpoints it; the checkpoint resumes onto another server count', async () => {
  const ckpt = join(dir, 'ckpt');
  const first = (await cli(['launch', 'samples/custom-fm', ...common, '--workers', '2', '--servers', '2', '--steps', '30', '--checkpoint-dir', ckpt, '--json'])).json;
  assert.equal([first.model, first.workers, first.servers, first.steps], ['custom-fm', 2, 2, 30]);
  assert.ok(first.auc > 0.62, `held-out AUC ${first.auc} (planted ${first.plantedAuc})`);
  assert.ok(existsSync(join(ckpt, 'step-30', 'manifest.json')), 'a checkpoint at step 30');
  // The dense linear term's weight is declared [1, 'D']: the checkpoint holds its evaluated shape.
  const dense = (await readSafetensorsHeader(join(ckpt, 'step-30', 'dense.safetensors'))).tensors;
  assert.equal([dense['dense.wd']?.shape, dense['dense.w0']?.shape], [[1, 13], [1]]);
  const resumed = (await cli(['launch', 'samples/custom-fm', ...common, '--workers', '2', '--servers', '1', '--steps', '40', '--resume', ckpt, '--json'])).json;
  assert.equal([resumed.model, resumed.servers, resumed.steps], ['custom-fm', 1, 10]);
  assert.ok(resumed.auc >= first.auc - 0.02, `resumed AUC ${resumed.auc} after ${first.auc}: the parameters carried over`);
  // A checkpoint of one model does not resume another.
  const wrong = await failure(['launch', 'samples/dlrm', ...common, '--workers', '1', '--servers', '1', '--steps', '31', '--resume', ckpt]);
  assert.match(wrong, /written by the custom-fm model; this run trains dlrm/);
});

test('compare samples/custom-fm runs both modes', async () => {
  const { json } = await cli(['compare', 'samples/custom-fm', ...common, '--workers', '2', '--servers', '1', '--steps', '8', '--report', join(dir, 'r.html'), '--json']);
  assert.equal([json.hybrid.model, json.hybrid.mode, json.pureps.model, json.pureps.mode], ['custom-fm', 'hybrid', 'custom-fm', 'pure-ps']);
  assert.ok(existsSync(join(dir, 'r.html')));
});

test('a bad model module is refused before anything starts, saying why', async () => {
  const sample = (name: string, json: object, files: Record<string, string> = {}) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'sample.json'), JSON.stringify(json));
    for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
    return d;
  };
  assert.match(await failure(['launch', sample('missing', { module: './nope.ts' }), ...common]), /model module \.\/nope\.ts: no such file/);
  assert.match(await failure(['launch', sample('builtin', { module: 'dlrmm' }), ...common]), /no built-in model by that name \(built in: dlrm/);
  assert.match(await failure(['launch', sample('empty', { module: './m.ts' }, { 'm.ts': 'export const model = { name: "x" };\n' }), ...common]),
    /must export `model`.*missing: model\.defaults \(object\), model\.validate \(function\), model\.spec \(function\), model\.toBatch \(function\)/);
  assert.match(await failure(['launch', 'samples/custom-fm', ...common, '--model', '{"fields":30}']), /invalid custom-fm model configuration:\s+model\.fields must be 1\.\.26/);
});

test.run();
