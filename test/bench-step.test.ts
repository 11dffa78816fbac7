// The step benchmark as CI runs it: `npm run bench -- step --quick --json` on one configuration
// (2 servers, 2 worker processes with the ring allreduce, SSP:2) ends with one JSON object whose
// fields exist and are finite (and positive where a time, a rate or a count must be), and the run
// leaves no process behind. A table too large for the machine is refused with the reason before
// anything starts. No timing assertions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

const CONFIG = 's2-w2-adagrad-ssp2';

function runBench(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', 'step', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Pids of live processes whose environment holds `marker` (every process the run started inherits it). */
function processesWith(marker: string): number[] {
  if (!existsSync('/proc/self/environ')) return [];
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid).filter((d) => {
    try { return readFileSync(`/proc/${d}/environ`, 'latin1').includes(marker); } catch { return false; }
  }).map(Number);
}

const positive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;
const nonNegative = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;

test(`--quick --json --config ${CONFIG}: one JSON object with every field; no process left`, async () => {
  const marker = `BENCH_STEP_TEST_${process.pid}_${Date.now()}`;
  const { code, stdout, stderr } = await runBench(['--quick', '--json', '--config', CONFIG], { [marker]: '1' });
  assert.is(code, 0, stderr.slice(-3000));
  const last = stdout.trim().split('\n').at(-1)!;
  const r = JSON.parse(last);
  assert.is(r.bench, 'step');
  assert.is(r.configs.length, 1);
  const c = r.configs[0];
  assert.equal([c.name, c.servers, c.workers, c.optimizer, c.consistency], [CONFIG, 2, 2, 'adagrad', 'ssp:2']);
  for (const k of ['dataPathMs', 'ceilingSamplesPerSec', 'clusterCeilingSamplesPerSec', 'wireFloorMs', 'ratio', 'rowsTouched', 'rowsPulled', 'rowsPushed', 'stepMs', 'batch', 'pullBytes', 'pushBytes', 'serverRows', 'serverTableBytes', 'memoryEstimateBytes']) {
    assert.ok(positive(c[k]), `${k} = ${c[k]}`);
  }
  assert.ok(nonNegative(c.cacheHitRate) && c.cacheHitRate <= 1, `cacheHitRate = ${c.cacheHitRate}`);
  assert.ok(Number.isInteger(c.viewChanges) && c.viewChanges >= 0, `viewChanges = ${c.viewChanges}`);
  assert.ok(positive(c.allreduceMs), `allreduceMs = ${c.allreduceMs} (2 workers: the dense gradient is allreduced)`);
  for (const phases of ['phases', 'dataPathPhases']) {
    for (const k of ['prep', 'pull', 'upload', 'compute', 'download', 'push', 'dense', 'clock']) assert.ok(nonNegative(c[phases][k]), `${phases}.${k} = ${c[phases][k]}`);
  }
  for (const k of ['prep', 'pull', 'push', 'clock']) assert.ok(positive(c.dataPathPhases[k]), `dataPathPhases.${k}`);
  for (const k of ['compute', 'upload', 'download']) {
    assert.ok(positive(c.phases[k]), `phases.${k}: the GPU run does GPU work`);
    assert.is(c.dataPathPhases[k], 0, `dataPathPhases.${k}: the data path does none`);
  }
  assert.ok(positive(c.wireFloor.pullMs) && positive(c.wireFloor.pushMs) && positive(c.wireFloor.pullBytes) && positive(c.wireFloor.pushBytes));
  // The GPU's share of the real step and what is left exposed (medians over steps, so not exactly step - gpu).
  assert.ok(positive(c.gpuMs) && c.gpuMs <= c.stepMs && nonNegative(c.exposedDataPathMs) && c.exposedDataPathMs <= c.stepMs, `gpu ${c.gpuMs}, exposed ${c.exposedDataPathMs}, step ${c.stepMs}`);
  assert.is(c.exposedTarget.applies, c.gpuMs > c.dataPathMs);
  assert.ok(positive(c.workerCpuMs), `workerCpuMs = ${c.workerCpuMs}`);
  // Every row the batch touched was pulled and pushed (no row cache yet): pulled <= touched either way.
  assert.ok(c.rowsPulled <= c.rowsTouched, `${c.rowsPulled} pulled of ${c.rowsTouched} touched`);
  assert.is(c.serverRows, 26 * r.rowsPerTable, 'the fill created every row');
  assert.match(c.adapter, /\w/);
  assert.equal(processesWith(marker), [], 'processes left behind');
});

test('--cache-rows: an SSP configuration runs without and with the row cache in the same run; the cached run reports its hits', async () => {
  const { code, stdout, stderr } = await runBench(['--quick', '--json', '--config', 's1-w1-sgd-ssp2', '--cache-rows', '4096', '--gpu-steps', '0', '--steps', '4']);
  assert.is(code, 0, stderr.slice(-3000));
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!);
  assert.equal(r.configs.map((c: { name: string }) => c.name), ['s1-w1-sgd-ssp2', 's1-w1-sgd-ssp2+cache']);
  const [plain, cached] = r.configs;
  assert.is(plain.cache, null);
  assert.is(cached.cacheRows, 4096);
  assert.ok(positive(cached.cache.hitsPerStep) && cached.cache.hitsPerStep < cached.cache.lookupsPerStep, JSON.stringify(cached.cache));
  assert.ok(positive(cached.cache.bytesSavedPerStep) && nonNegative(cached.cache.evictionsPerStep));
  assert.ok(cached.cacheHitRate > 0 && cached.cacheHitRate < 1, `cacheHitRate = ${cached.cacheHitRate}`);
  assert.ok(cached.rowsPulled < plain.rowsPulled, `pulled ${cached.rowsPulled} with the cache, ${plain.rowsPulled} without`);
});

test('--cache-policy: an AdaGrad SSP configuration runs once per policy, its rows pulled with their optimizer state', async () => {
  const { code, stdout, stderr } = await runBench(['--quick', '--json', '--config', 's1-w1-adagrad-ssp2', '--cache-rows', '4096', '--cache-policy', 'all:0,second-touch:4', '--gpu-steps', '0', '--steps', '4']);
  assert.is(code, 0, stderr.slice(-3000));
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!);
  assert.equal(r.configs.map((c: { name: string }) => c.name), ['s1-w1-adagrad-ssp2', 's1-w1-adagrad-ssp2+cache(all:0)', 's1-w1-adagrad-ssp2+cache(second-touch:4)']);
  const [plain, all, second] = r.configs;
  assert.equal(all.cachePolicy, { admit: 'all', stateRefresh: 0 });
  assert.ok(positive(all.cache.statePullsPerStep) && positive(all.cache.hitsPerStep), JSON.stringify(all.cache));
  // State with every miss costs bytes: more than the plain run pulls.
  assert.ok(all.pullBytes > plain.pullBytes, `${all.pullBytes} bytes with state on every miss, ${plain.pullBytes} without a cache`);
  assert.ok(second.cache.statePullsPerStep < all.cache.statePullsPerStep, `${second.cache.statePullsPerStep} rows with state on a second touch, ${all.cache.statePullsPerStep} on every miss`);
  const bad = await runBench(['--quick', '--json', '--config', 's1-w1-adagrad-ssp2', '--cache-rows', '4096', '--cache-policy', 'often:2']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /--cache-policy often:2: expected ADMIT:REFRESH/);
});

test('a table too large for the machine is refused with the reason, before anything starts', async () => {
  const { code, stdout, stderr } = await runBench(['--quick', '--json', '--config', CONFIG, '--rows-per-table', '1000000000']);
  assert.is(code, 1);
  assert.match(stderr, /needs ~[\d.]+ GB of memory for s2-w2-adagrad-ssp2 .* available/);
  assert.match(stderr, /--rows-per-table \d+ or fewer would fit/);
  assert.not.match(stdout + stderr, /starting the scheduler/);
});

test('an unknown configuration is refused with the list', async () => {
  const { code, stderr } = await runBench(['--quick', '--config', 's9-w1-sgd-bsp']);
  assert.is(code, 1);
  assert.match(stderr, /--config s9-w1-sgd-bsp: not a configuration; one of s1-w1-sgd-bsp, /);
});

test.run();
