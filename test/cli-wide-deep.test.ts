// `hybridps launch samples/wide-deep` end to end, real CLI processes on lavapipe: the wide part's
// table is trained with FTRL-Proximal on the servers (its optimizer slots z and n are in the
// checkpoint), the run reaches a held-out AUC well above chance on planted data, the checkpoint
// resumes onto another server count, and `compare` runs both modes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listShardFiles, readSafetensors } from '../src/checkpoint/index.ts';
import { tmp } from './helpers/train.ts';

const run = promisify(execFile);
const dir = tmp('hps-wd-');
const data = join(dir, 'd.tsv');
const common = ['samples/wide-deep', '--data', data, '--rows-per-table', '50', '--batch', '64', '--eval-samples', '300', '--workers', '2'];

async function cli(args: string[]): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  // The timeout is a hang guard: a cluster of tsx processes starts slowly on a busy machine.
  const r = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 280_000, env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

test('launch trains Wide & Deep; the checkpoint (FTRL state included) resumes onto another server count', async () => {
  await cli(['gen-data', '--out', data, '--samples', '6000', '--seed', '3', '--rows-per-table', '50', '--json']);
  const ckpt = join(dir, 'ckpt');
  const first = await cli(['launch', ...common, '--servers', '2', '--steps', '30', '--checkpoint-dir', ckpt, '--json']);
  assert.equal([first.model, first.steps, first.servers], ['wide-deep', 30, 2]);
  assert.ok(first.auc > 0.65, `held-out AUC ${first.auc} (planted ${first.plantedAuc})`);
  const shards = await listShardFiles(join(ckpt, 'step-30'));
  const names = (await Promise.all(shards.map(async (f) => Object.keys((await readSafetensors(f)).tensors)))).flat();
  for (const n of ['wide.keys', 'wide.values', 'wide.slot.z', 'wide.slot.n']) assert.ok(names.some((x) => x === n || x.startsWith(`${n}`)), `${n} in the checkpoint: ${names.filter((x) => x.startsWith('wide')).join(', ')}`);
  const resumed = await cli(['launch', ...common, '--servers', '1', '--steps', '36', '--resume', ckpt, '--json']);
  assert.equal([resumed.model, resumed.servers, resumed.steps], ['wide-deep', 1, 6]);
  assert.ok(resumed.auc >= first.auc - 0.02, `resumed AUC ${resumed.auc} after ${first.auc}`);
});

test('compare samples/wide-deep runs both modes', async () => {
  const j = await cli(['compare', ...common, '--servers', '1', '--steps', '4', '--report', join(dir, 'r.html'), '--json']);
  assert.equal([j.hybrid.model, j.pureps.model, j.pureps.mode], ['wide-deep', 'wide-deep', 'pure-ps']);
  assert.ok(existsSync(join(dir, 'r.html')), readdirSync(dir).join(', '));
});

test.run();
