// The comparison report opens from disk in a real headless Chromium with no console error, and
// every plot draws.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeReport, comparisonTable, type RunSummary } from '../src/launch/compare-report.ts';

function run(mode: RunSummary['mode'], speed: number): RunSummary {
  const steps = Array.from({ length: 30 }, (_, i) => i * 10);
  return {
    mode, consistency: 'bsp', workers: 2, servers: 2, steps: 300, samplesPerSec: 1000 * speed, logloss: 0.45, auc: 0.76,
    bytes: { pull: 3e6, push: 3e6, allreduce: mode === 'hybrid' ? 2e6 : 0 },
    phases: { pull: 3 / speed, compute: 20, push: 2, dense: mode === 'hybrid' ? 4 : 9 },
    history: {
      step: steps, wallSec: steps.map((s) => s / (10 * speed)), loss: steps.map((s) => 0.69 * Math.exp(-s / 200) + 0.4),
      pullBytes: steps.map(() => 1e4), pushBytes: steps.map(() => 1e4), allreduceBytes: steps.map(() => (mode === 'hybrid' ? 7e3 : 0)),
    },
  };
}

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

test('terminal table lists both modes', () => {
  const t = comparisonTable([run('hybrid', 1.2), run('pure-ps', 1)]);
  assert.match(t, /hybrid\s+pure-ps/);
  assert.match(t, /samples\/s/);
  assert.match(t, /AUC/);
  assert.not.match(t, /row cache/, 'no cache rows when no run cached');
  const cached = comparisonTable([{ ...run('hybrid', 1.2), cache: { hitRate: 0.625, hits: 5, misses: 3, evictions: 1, bytesSaved: 300 * 2048 } }, run('pure-ps', 1)]);
  assert.match(cached, /row cache hit rate\s+62\.5%\s+off/);
  assert.match(cached, /cache saved\/step\s+2\.0 KiB\s+-/);
});

test('the HTML report draws every plot in headless Chromium with no console error', async () => {
  assert.ok(CHROMIUM, 'Chromium is needed for this test: apt-get install chromium (scripts/setup.sh --browser installs it)');
  const dir = mkdtempSync(join(tmpdir(), 'hps-report-'));
  try {
    const file = join(dir, 'report.html');
    await writeReport(file, [run('hybrid', 1.2), run('pure-ps', 1)]);
    assert.not.match(readFileSync(file, 'utf8'), /src="http|href="http/, 'the page loads nothing from the network');
    const r = spawnSync(CHROMIUM!, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'profile')}`,
      '--enable-logging=stderr', '--v=0', '--virtual-time-budget=5000', '--dump-dom', `file://${file}`,
    ], { encoding: 'utf8', timeout: 60_000 });
    const consoleLines = r.stderr.split('\n').filter((l) => /CONSOLE|Uncaught/.test(l));
    assert.equal(consoleLines.filter((l) => /error|Uncaught/i.test(l)), [], 'no console errors');
    for (const id of ['plot-loss-step', 'plot-loss-time', 'plot-bytes', 'plot-phases']) {
      const m = new RegExp(`id="${id}"[^>]*data-drawn="(\\d+)"[^>]*>(.*?)</div></div>`, 's').exec(r.stdout) ?? new RegExp(`id="${id}"[^>]*data-drawn="(\\d+)"`).exec(r.stdout);
      assert.ok(m, `${id} was mounted (DOM: ${r.stdout.length} bytes, exit ${r.status})`);
      assert.ok(Number(m![1]) > 0, `${id} has data points`);
    }
    assert.ok((r.stdout.match(/<canvas/g) ?? []).length >= 4, 'each plot has a canvas');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
