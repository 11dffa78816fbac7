// The training commands as a user runs them (`hybridps launch samples/dlrm`, `hybridps compare`,
// `hybridps gen-data`): real child processes, `--json` ends stdout with one object holding the
// documented fields, the report file exists, bad flags fail before anything starts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmp } from './helpers/train.ts';
import { readSample } from '../src/cli/train-flags.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const dir = tmp();
const TINY = JSON.stringify({ numTables: 26, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 50 });

function hybridps(args: string[]): { code: number | null; stdout: string; stderr: string; json: any } { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 240_000, env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  let json = null;
  try { json = JSON.parse(last); } catch { /* not JSON */ }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

const data = join(dir, 'synthetic.tsv');

test('gen-data writes the file and its planted AUC', () => {
  const r = hybridps(['gen-data', '--out', data, '--samples', '6000', '--seed', '5', '--rows-per-table', '50', '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(existsSync(data) && existsSync(`${data}.meta.json`));
  assert.ok(r.json.plantedAuc > 0.7 && r.json.plantedAuc < 0.9, String(r.json.plantedAuc));
});

test('launch samples/dlrm --json: one summary object with the documented fields', () => {
  const r = hybridps(['launch', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50', '--workers', '2', '--servers', '2',
    '--batch', '32', '--steps', '12', '--eval-every', '6', '--eval-samples', '200', '--consistency', 'ssp:1', '--json']);
  assert.is(r.code, 0, r.stderr);
  const j = r.json;
  for (const k of ['mode', 'consistency', 'workers', 'servers', 'steps', 'samplesPerSec', 'logloss', 'auc', 'bytes', 'plantedAuc']) assert.ok(k in j, `missing ${k}`);
  assert.equal([j.mode, j.consistency, j.workers, j.servers, j.steps], ['hybrid', 'ssp:1', 2, 2, 12]);
  assert.ok(j.bytes.pull > 0 && j.bytes.push > 0 && j.bytes.allreduce > 0, JSON.stringify(j.bytes));
  assert.is(j.evals.length, 3, 'evaluations at steps 6 and 12, and the final one');
  assert.match(r.stderr, /held-out +logloss/); // the people-facing summary goes to stderr with --json
  // The cluster stops members first, the scheduler last: a finished run loses no peer.
  assert.not.match(r.stderr, /peer lost/);
});

test('launch with the row cache (SSP:2, SGD tables, a tiny --cache-rows): finite loss, the summary shows hit rate and evictions', () => {
  const r = hybridps(['launch', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50', '--workers', '2', '--servers', '2',
    '--batch', '32', '--steps', '10', '--consistency', 'ssp:2', '--optimizer', 'emb=sgd,dense=adagrad', '--cache-rows', '8', '--json']);
  assert.is(r.code, 0, r.stderr);
  const c = r.json.cache;
  assert.ok(c && c.hits > 0 && c.misses > 0 && c.hitRate > 0 && c.hitRate < 1 && c.evictions > 0 && c.bytesSaved > 0, JSON.stringify(c));
  // 10 steps of a tiny model: trained a little, not to an AUC; what matters is that it stays finite.
  assert.ok(Number.isFinite(r.json.logloss) && Number.isFinite(r.json.auc), `logloss ${r.json.logloss}, AUC ${r.json.auc}`);
  assert.match(r.stderr, /row cache +hit rate [\d.]+% \(\d+ of \d+ rows\), \d+ evictions/);
  // BSP (the sample's default) is never cached: no cache in the summary.
  const bsp = hybridps(['launch', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50', '--workers', '1', '--servers', '1',
    '--batch', '32', '--steps', '3', '--optimizer', 'emb=sgd,dense=adagrad', '--cache-rows', '8', '--json']);
  assert.is(bsp.code, 0, bsp.stderr);
  assert.ok(!('cache' in bsp.json));
});

test('--hot-rows is validated before anything starts', () => {
  const r = hybridps(['launch', 'samples/dlrm', '--data', data, '--hot-rows', '2.5']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /--hot-rows 2.5: a row count per table \(an integer >= 0\) or a fraction of the table's rows below 1/);
});

test('launch with the row cache on AdaGrad tables (SSP:2, the sample\'s optimizer): cached with their state, finite loss and AUC', () => {
  const r = hybridps(['launch', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50', '--workers', '2', '--servers', '2',
    '--batch', '32', '--steps', '10', '--consistency', 'ssp:2', '--cache-rows', '64', '--json']);
  assert.is(r.code, 0, r.stderr);
  const c = r.json.cache;
  assert.ok(c && c.hits > 0 && c.misses > 0 && c.bytesSaved > 0, JSON.stringify(c));
  assert.ok(Number.isFinite(r.json.logloss) && Number.isFinite(r.json.auc), `logloss ${r.json.logloss}, AUC ${r.json.auc}`);
});

test('--cache-rows and --cache-refresh are validated before anything starts', () => {
  const r = hybridps(['launch', 'samples/dlrm', '--data', data, '--cache-rows', '-1', '--cache-refresh', '0']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /--cache-rows must be an integer >= 0 \(got -1\)/);
  assert.match(r.stderr, /--cache-refresh must be an integer >= 1 \(got 0\)/);
});

test('compare: both modes, a report page, one JSON object', () => {
  const report = join(dir, 'report.html');
  const r = hybridps(['compare', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50', '--workers', '2', '--servers', '1',
    '--batch', '32', '--steps', '6', '--report', report, '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.equal([r.json.hybrid.mode, r.json.pureps.mode], ['hybrid', 'pure-ps']);
  assert.is(r.json.report, report);
  assert.ok(r.json.pureps.bytes.allreduce === 0 && r.json.hybrid.bytes.allreduce > 0);
  assert.ok(r.json.pureps.bytes.pull > r.json.hybrid.bytes.pull, 'pure-PS also pulls the dense vector every step');
  const html = readFileSync(report, 'utf8');
  assert.ok(html.includes('uPlot') && html.includes('pure-ps'));
  // Without --eval-every compare evaluates periodically (about 10 times; every step of these 6), then on all held-out samples.
  for (const run of [r.json.hybrid, r.json.pureps]) {
    assert.equal(run.evals.map((e: { step: number }) => e.step), [1, 2, 3, 4, 5, 6, 6], 'periodic evaluations, then the final one');
    assert.ok(run.evals.every((e: { positives: number; samples: number }) => e.positives > 0 && e.positives < e.samples));
  }
  assert.match(r.stderr, /evaluating every step on 4096 held-out samples/);
  assert.match(r.stderr, /compared:\n\s+modes\s+hybrid vs pure-ps\n\s+model\s+dlrm/);
  assert.match(r.stderr, /verdict:\n\s+speed: (hybrid|pure-ps) was [\d.]+x as fast as (hybrid|pure-ps)/);
  assert.match(html, /<ul id="verdict">.*(the same within noise|differs beyond noise|no difference)/s);
  // Evaluating is not training: the same run evaluated every 3 steps moved the same bytes as this
  // one evaluated every step (BSP pulls are deterministic; the evaluations' pulls are left out).
  const l = hybridps(['launch', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50', '--workers', '2', '--servers', '1',
    '--batch', '32', '--steps', '6', '--eval-every', '3', '--json']);
  assert.is(l.code, 0, l.stderr);
  assert.is(l.json.evals.length, 3);
  assert.equal(l.json.bytes, r.json.hybrid.bytes, 'bytes do not depend on how often the run evaluates');
});

test('SIGUSR2 to the launcher: a checkpoint on request, at a step no worker has finished', async () => {
  const ckpt = join(dir, 'ckpt-on-request');
  const p = spawn(process.execPath, ['--import', 'tsx', MAIN, 'launch', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50',
    '--workers', '2', '--servers', '1', '--batch', '16', '--steps', '300', '--checkpoint-dir', ckpt, '--json'], { env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
  let stderr = '', asked = false;
  p.stderr.on('data', (d) => {
    stderr += d;
    if (!asked && /step \d+/.test(stderr)) { asked = true; p.kill('SIGUSR2'); }
  });
  const code = await new Promise<number | null>((r) => p.on('exit', r));
  assert.is(code, 0, stderr);
  const at = Number(/checkpoint requested: at step (\d+)/.exec(stderr)?.[1]);
  assert.ok(at > 0 && at < 300, stderr);
  assert.ok(existsSync(join(ckpt, `step-${at}`, 'manifest.json')), `step-${at} was written`);
  assert.ok(existsSync(join(ckpt, 'step-300', 'manifest.json')), 'and the final one');
  assert.is(readFileSync(join(ckpt, 'latest'), 'utf8').trim(), 'step-300');
});

test('bad flags fail at once with a message', () => {
  const r = hybridps(['launch', 'samples/dlrm', '--data', data, '--consistency', 'ssp:x', '--workers', '0']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /--consistency ssp:x/);
  const r2 = hybridps(['launch', 'samples/dlrm', '--data', data, '--workers', '0', '--lr', 'emb=-1']);
  assert.is(r2.code, 1);
  assert.match(r2.stderr, /--workers must be an integer >= 1/);
  assert.match(r2.stderr, /--lr emb=-1/);
  const r3 = hybridps(['launch', 'nowhere']);
  assert.match(r3.stderr, /not a sample directory/);
  assert.match(r3.stderr, /the package's samples: .*samples\/dlrm/);
});

test('a sample named relative to the package is found from any directory', () => {
  const elsewhere = tmp('hps-cwd-');
  const s = readSample('samples/wide-deep', elsewhere);
  assert.is(s.dir, fileURLToPath(new URL('../samples/wide-deep', import.meta.url)));
  assert.throws(() => readSample('samples/nope', elsewhere), /samples\/nope is not a sample directory/);
});

test.run();
