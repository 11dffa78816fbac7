// Elastic training through the launcher: `--keep-going`, a worker killed with SIGKILL mid-run,
// and the run still finishes: the scheduler drops the dead worker, BSP clocks and barriers count
// the survivors, the allreduce ring is rebuilt, and the summary names the failure. Without
// `--keep-going` the same failure stops everything with an error that names the worker.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmp, writeRandomCriteo } from './helpers/train.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const dir = tmp();
const data = writeRandomCriteo(join(dir, 'train.tsv'), 6000, 9);
const TINY = JSON.stringify({ numTables: 8, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 50 });

/** Runs launch, kills worker-1 once training has started, returns exit code and output. */
function launchAndKill(extra: string[]): Promise<{ code: number | null; stdout: string; stderr: string; url: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', MAIN, 'launch', 'samples/dlrm', '--data', data, '--model', TINY, '--rows-per-table', '50',
      '--workers', '3', '--servers', '2', '--batch', '32', '--steps', '400', '--json', ...extra], { env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
    let stdout = '', stderr = '', killed = false;
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => {
      stderr += d;
      const url = /scheduler (ws:\/\/[\d.:]+)/.exec(stderr)?.[1];
      if (!killed && url && /step \d+/.test(stderr)) {
        killed = true;
        const line = execSync('ps -eo pid,args').toString().split('\n').find((l) => l.includes(`worker --scheduler ${url} --node-id worker-1 `));
        if (line) process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
      }
    });
    p.on('exit', (code) => resolve({ code, stdout, stderr, url: /scheduler (ws:\/\/[\d.:]+)/.exec(stderr)?.[1] ?? 'none' }));
  });
}

test('--keep-going: a worker killed mid-run, the others finish the run', async () => {
  const r = await launchAndKill(['--keep-going']);
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(j.failedWorkers, ['worker-1'], r.stderr.split('\n').slice(-30).join('\n'));
  assert.is(j.steps, 400);
  assert.is(j.denseHashes.length, 2);
  assert.is(j.denseHashes[0], j.denseHashes[1], 'the two survivors hold identical dense parameters');
  assert.ok(Number.isFinite(j.auc));
  assert.match(r.stderr, /worker-1 exited with SIGKILL; continuing/);
});

test('without --keep-going the failure stops the run and names the worker', async () => {
  const r = await launchAndKill([]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /worker-1 exited with SIGKILL/);
  // Servers and workers name the scheduler on their command line: none of this run's is left.
  assert.is(execSync('ps -eo args').toString().split('\n').filter((l) => l.includes(`--scheduler ${r.url} `)).length, 0, 'no process left behind');
});

test.run();
