// The compare verdict and the report's plot data on constructed summaries: which mode was faster
// and by how much, where the bytes went, whether the AUCs differ beyond the held-out set's noise
// (the standard error checked against a simulation), the row cache; the smoothed loss and the
// y range that shows its tail.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareVerdict, aucStandardError, configRows, NOISE_SE } from '../src/launch/compare-verdict.ts';
import { ema, lossRange, plotSpecs } from '../src/launch/compare-plots.ts';
import { exactAuc } from '../src/metrics/classification.ts';
import { constructedRun } from './helpers/compare-runs.ts';

test('faster by X%: the ratio of samples/s, whichever run is first', () => {
  const v = compareVerdict([constructedRun('hybrid', { speed: 1.25 }), constructedRun('pure-ps')]);
  assert.equal(v.faster, { mode: 'hybrid', than: 'pure-ps', ratio: 1.25, call: 'beyond noise' });
  assert.match(v.lines[0]!, /^speed: hybrid was 1\.25x as fast as pure-ps \(1,250 vs 1,000 samples\/s, 25\.0% more\); mean step 80\.0 ms vs 100 ms, .*: beyond the step-to-step spread/);
  const w = compareVerdict([constructedRun('hybrid'), constructedRun('pure-ps', { speed: 1.5 })]);
  assert.equal(w.faster.mode, 'pure-ps');
  assert.ok(Math.abs(w.faster.ratio - 1.5) < 1e-12);
  assert.match(w.lines[0]!, /pure-ps was 1\.50x as fast as hybrid .*50\.0% more/);
});

test('speed within noise: step times that scatter more than the modes differ', () => {
  // Step times alternating 50 and 150 ms (mean 100 ms, SE about 2.9 ms over 300 steps) against a 2% faster run.
  const noisy = (r: ReturnType<typeof constructedRun>, scale: number) => {
    let t = 0;
    return { ...r, history: { ...r.history, wallSec: r.history.step.map((s) => (t += (s % 2 ? 0.05 : 0.15) * scale)) } };
  };
  const v = compareVerdict([noisy(constructedRun('hybrid', { speed: 1.02 }), 1 / 1.02), noisy(constructedRun('pure-ps'), 1)]);
  assert.is(v.faster.mode, 'hybrid');
  assert.is(v.faster.call, 'within noise');
  assert.match(v.lines[0]!, /within the step-to-step spread \(criterion: more than 2 SE; the runs ran one after the other/);
});

test('where the bytes went: per mode, by kind, with shares', () => {
  const v = compareVerdict([constructedRun('hybrid'), constructedRun('pure-ps')]);
  // hybrid per step: pull 3e6 + push 2.5e6 + allreduce 2e6 = 7.5e6 bytes; pure-PS: 5.5e6.
  assert.ok(v.lines.includes('bytes: hybrid 7.15 MiB/step on the wire (all workers): pull 2.86 MiB (40%), push 2.38 MiB (33%), allreduce 1.91 MiB (27%)'), v.lines.join('\n'));
  assert.ok(v.lines.some((l) => /^bytes: pure-ps 5\.25 MiB\/step .*allreduce 0 B \(0%\)$/.test(l)));
  assert.ok(v.lines.includes('bytes: hybrid moved 1.36x the bytes per step of pure-ps'));
});

test('accuracy: the same within noise, or different beyond it, at two standard errors', () => {
  // 20,000 held-out samples, 5,000 positive, AUC 0.76: SE about 0.0042 per run, 0.0060 for the difference.
  const se = Math.hypot(aucStandardError(0.76, 5000, 15000), aucStandardError(0.765, 5000, 15000));
  const same = compareVerdict([constructedRun('hybrid', { auc: 0.76 }), constructedRun('pure-ps', { auc: 0.765 })]);
  assert.is(same.accuracy.call, 'same');
  assert.ok(Math.abs(same.accuracy.se - se) < 1e-12 && Math.abs(same.accuracy.aucDiff - 0.005) < 1e-12);
  assert.ok(same.lines.some((l) => /the same within noise \(standard error 0\.0060 from 20,000 held-out samples/.test(l)), same.lines.join('\n'));
  const diff = compareVerdict([constructedRun('hybrid', { auc: 0.76 }), constructedRun('pure-ps', { auc: 0.74 })]);
  assert.is(diff.accuracy.call, 'different');
  assert.ok(Math.abs(diff.accuracy.aucDiff) > NOISE_SE * diff.accuracy.se);
  assert.ok(diff.lines.some((l) => /differs beyond noise/.test(l)));
  // The same AUC gap on a small held-out set is within its noise.
  const small = compareVerdict([constructedRun('hybrid', { auc: 0.76, heldOut: 400 }), constructedRun('pure-ps', { auc: 0.74, heldOut: 400 })]);
  assert.is(small.accuracy.call, 'same');
  const none = compareVerdict([{ ...constructedRun('hybrid'), evals: [] }, constructedRun('pure-ps')]);
  assert.is(none.accuracy.call, 'unknown');
});

test('the AUC standard error matches the spread over simulated held-out sets (binormal, d = 1)', () => {
  // Scores ~ N(0,1) for negatives and N(1,1) for positives: AUC = Phi(1/sqrt 2) = 0.7602.
  let seed = 12345;
  const uniform = () => ((seed = (seed * 1103515245 + 12345) >>> 0) + 0.5) / 2 ** 32;
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const pos = 150, neg = 450, aucs: number[] = [];
  for (let rep = 0; rep < 300; rep++) {
    const scores: number[] = [], labels: number[] = [];
    for (let i = 0; i < pos + neg; i++) { const y = i < pos ? 1 : 0; labels.push(y); scores.push(normal() + y); }
    aucs.push(exactAuc(scores, labels));
  }
  const mean = aucs.reduce((a, x) => a + x, 0) / aucs.length;
  const sd = Math.sqrt(aucs.reduce((a, x) => a + (x - mean) ** 2, 0) / (aucs.length - 1));
  const se = aucStandardError(mean, pos, neg);
  // 300 draws estimate a standard deviation to about 4%; Hanley-McNeil's approximation adds a few %.
  assert.ok(Math.abs(se / sd - 1) < 0.15, `Hanley-McNeil ${se.toFixed(4)} vs simulated ${sd.toFixed(4)} (mean AUC ${mean.toFixed(4)})`);
  assert.is(aucStandardError(0.8, 0, 100), Number.POSITIVE_INFINITY, 'one class: no standard error');
});

test('row cache: its hit rate when a run cached', () => {
  const cached = { ...constructedRun('hybrid'), cache: { hitRate: 0.625, hits: 500, misses: 300, evictions: 10, bytesSaved: 300 * 4096 } };
  const v = compareVerdict([cached, constructedRun('pure-ps')]);
  assert.ok(v.lines.includes('row cache: hybrid hit 62.5% of 800 row reads, saving 4.00 KiB of pulls per step'), v.lines.join('\n'));
  assert.not.ok(compareVerdict([constructedRun('hybrid'), constructedRun('pure-ps')]).lines.some((l) => l.startsWith('row cache')));
});

test('configuration rows: one value where the runs agree, each run\'s where they differ', () => {
  const rows = Object.fromEntries(configRows([constructedRun('hybrid'), { ...constructedRun('pure-ps'), consistency: 'ssp:2' }]));
  assert.is(rows.model, 'dlrm');
  assert.is(rows.consistency, 'hybrid: bsp; pure-ps: ssp:2');
  assert.is(rows['held-out'], '20,000 samples, 5,000 positive');
});

test('smoothed loss: a bias-corrected EMA, and a y range that shows the tail with the spike clipped', () => {
  const e = ema([4, 2, 2, 2], 3); // alpha 0.5: (0.5*4) / 0.5 = 4, then (0.25*4 + 0.5*2) / 0.75 = 2.667 ...
  assert.ok(Math.abs(e[0]! - 4) < 1e-12 && Math.abs(e[1]! - 8 / 3) < 1e-12, String(e));
  const run = constructedRun('hybrid');
  const [step] = plotSpecs([run, constructedRun('pure-ps')]);
  assert.is(step!.id, 'plot-loss-step');
  const [lo, hi] = step!.yRange!;
  assert.ok(lo < 0.41 && hi < 0.6, `range ${lo}..${hi} is the tail's, not the spike's (5.0)`);
  const { clipped, clippedMax } = lossRange([ema(run.history.loss, 15)]);
  assert.ok(clipped > 0 && clippedMax === 5, `${clipped} points clipped, up to ${clippedMax}`);
  assert.match(step!.note!, /EMA over 15 steps .* early point\(s\) above it, up to 5\.000, are clipped/);
});

test('held-out plots: every evaluation, the final one last, against step and wall time', () => {
  const plots = Object.fromEntries(plotSpecs([constructedRun('hybrid', { speed: 2 }), constructedRun('pure-ps')]).map((p) => [p.id, p]));
  const auc = plots['plot-eval-auc-step']!;
  assert.equal(auc.x, [30, 60, 90, 120, 150, 180, 210, 240, 270, 300]);
  assert.is(auc.series[0]!.values[9], 0.76, 'the final evaluation (all held-out samples) wins at its step');
  const t = plots['plot-eval-logloss-time']!;
  assert.ok(t.x.includes(15) && t.x.includes(30), 'wall time of step 300: 15 s at twice the speed, 30 s at once');
});

test.run();
