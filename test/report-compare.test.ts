// The comparison report opens from disk in a real headless Chromium with no console error; every
// plot has data inside its visible range (the loss tail, not just the first steps' spike), and the
// configuration and the verdict are on the page.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeReport, comparisonTable, comparisonText, type RunSummary } from '../src/launch/compare-report.ts';
import { constructedRun } from './helpers/compare-runs.ts';
import { WARMUP_FRACTION } from '../src/launch/compare-plots.ts';

const run = (mode: RunSummary['mode'], speed: number) => constructedRun(mode, { speed });

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

test('terminal table lists both modes', () => {
  const t = comparisonTable([run('hybrid', 1.2), run('pure-ps', 1)]);
  assert.match(t, /hybrid\s+pure-ps/);
  assert.match(t, /samples\/s/);
  assert.match(t, /AUC/);
  assert.not.match(t, /row cache/, 'no cache rows when no run cached');
  const cached = comparisonTable([{ ...run('hybrid', 1.2), cache: { hitRate: 0.625, hits: 5, misses: 3, evictions: 1, bytesSaved: 300 * 2048 } }, run('pure-ps', 1)]);
  assert.match(cached, /row cache hit rate\s+62\.5%\s+off/);
  assert.match(cached, /cache saved\/step\s+2\.00 KiB\s+-/);
  assert.match(t, /pull bytes\/step\s+2\.86 MiB\s+2\.86 MiB/, 'bytes in readable units');
  assert.match(t, /compute time\/step\s+20\.0 ms/);
});

test('terminal text: the configuration, the table and the verdict', () => {
  const t = comparisonText([run('hybrid', 1.2), run('pure-ps', 1)]);
  assert.match(t, /model\s+dlrm/);
  assert.match(t, /data\s+\/data\/synthetic\.tsv \(200,000 lines\)/);
  assert.match(t, /batch\s+256 per worker \(512 per step\)/);
  assert.match(t, /optimizers\s+embeddings adagrad \(lr 0\.05\), dense adagrad \(lr 0\.05\)/);
  assert.match(t, /speed: hybrid was 1\.20x as fast as pure-ps/);
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
    const ids = ['plot-loss-step', 'plot-loss-time', 'plot-eval-auc-step', 'plot-eval-auc-time', 'plot-eval-logloss-step', 'plot-eval-logloss-time', 'plot-bytes', 'plot-phases'];
    for (const id of ids) {
      const tag = new RegExp(`<div[^>]*id="${id}"[^>]*>`).exec(r.stdout)?.[0];
      assert.ok(tag, `${id} is on the page (DOM: ${r.stdout.length} bytes, exit ${r.status})`);
      const drawn = Number(/data-drawn="(\d+)"/.exec(tag!)?.[1] ?? 0), visible = Number(/data-visible="(\d+)"/.exec(tag!)?.[1] ?? -1);
      assert.ok(drawn > 0, `${id} has data points`);
      assert.ok(visible > 0, `${id} has data inside its visible x and y range (${visible} of ${drawn})`);
      // The loss plots show the tail: all but the clipped first steps' spike lie in range.
      if (id.startsWith('plot-loss')) assert.ok(visible >= Math.floor((1 - WARMUP_FRACTION) * drawn) && visible < drawn, `${id}: ${visible} of ${drawn} points visible, the spike clipped`);
      else assert.is(visible, drawn, `${id}: every point visible`);
    }
    assert.match(r.stdout, /<table id="config">.*model.*dlrm.*200,000 lines.*consistency.*bsp/s, 'the configuration is stated');
    assert.match(r.stdout, /<ul id="verdict">.*hybrid was 1\.20x as fast as pure-ps.*the same within noise/s, 'the verdict is stated');
    assert.match(r.stdout, /early point\(s\) above it, up to 5\.000, are clipped/, 'the clipped spike is marked');
    assert.ok((r.stdout.match(/<canvas/g) ?? []).length >= ids.length, 'each plot has a canvas');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
