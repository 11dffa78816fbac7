// The hybrid-vs-pure-PS report: a terminal text (the configuration, a table, the verdict) and one
// self-contained HTML page (uPlot and its CSS inlined, the plots' data embedded as JSON) that
// opens from disk with no server and no network. What the plots show is computed in
// compare-plots.ts, what the numbers say in compare-verdict.ts.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { writeBytesAtomic } from '../checkpoint/atomic-file.ts';
import { fmtBytes, fmtCount, fmtMs, fmtPercent } from '../util/units.ts';
import { configRows, compareVerdict } from './compare-verdict.ts';
import { plotSpecs } from './compare-plots.ts';

export interface RunHistory {
  step: number[];
  /** Seconds since the run started, at each step. */
  wallSec: number[];
  loss: number[];
  /** Bytes on the wire per step, by kind. */
  pullBytes: number[];
  pushBytes: number[];
  allreduceBytes: number[];
}

/** One held-out evaluation (train/evaluate.ts): `positives` of `samples` labelled 1. */
export interface RunEval { step: number; samples: number; positives: number; logloss: number; auc: number }

export interface RunSummary {
  mode: 'hybrid' | 'pure-ps';
  /** The model module's name (as the workers loaded it). */
  model: string;
  consistency: string;
  workers: number;
  servers: number;
  steps: number;
  /** Batch per worker, optimizers and learning rates of the run. */
  settings: { batch: number; optimizer: { emb: string; dense: string }; lr: { emb: number; dense: number } };
  /** The data file and its lines (all of them, held-out included). */
  data: { path: string; lines: number };
  samplesPerSec: number;
  logloss: number;
  auc: number;
  bytes: { pull: number; push: number; allreduce: number };
  /** Mean milliseconds per step by phase (pull, upload, compute, download, push, dense...). */
  phases: Record<string, number>;
  history: RunHistory;
  /** Rank 0's held-out evaluations in order, the final one (all held-out samples) last. */
  evals: RunEval[];
  plantedAuc?: number;
  /** The workers' row caches (src/worker/row-cache.ts), summed; absent when no table was cached. */
  cache?: RunCacheSummary;
}

export interface RunCacheSummary { hitRate: number; hits: number; misses: number; evictions: number; bytesSaved: number }

/** The runs side by side, one row a measure, in readable units. */
export function comparisonTable(runs: RunSummary[]): string {
  const perStep = (n: number, r: RunSummary) => fmtBytes(n / Math.max(1, r.steps));
  const rows: [string, ...string[]][] = [
    ['', ...runs.map((r) => r.mode)],
    ['samples/s', ...runs.map((r) => fmtCount(r.samplesPerSec))],
    ['wall time (training)', ...runs.map((r) => fmtMs(1000 * (r.history.wallSec[r.history.wallSec.length - 1] ?? 0)))],
    ['bytes/step (all workers)', ...runs.map((r) => perStep(r.bytes.pull + r.bytes.push + r.bytes.allreduce, r))],
    ['  pull bytes/step', ...runs.map((r) => perStep(r.bytes.pull, r))],
    ['  push bytes/step', ...runs.map((r) => perStep(r.bytes.push, r))],
    ['  allreduce bytes/step', ...runs.map((r) => perStep(r.bytes.allreduce, r))],
    ...phaseNames(runs).map((p): [string, ...string[]] => [`${p} time/step`, ...runs.map((r) => fmtMs(r.phases[p] ?? 0))]),
    ['held-out logloss', ...runs.map((r) => r.logloss.toFixed(4))],
    ['held-out AUC', ...runs.map((r) => r.auc.toFixed(4))],
  ];
  if (runs.some((r) => r.plantedAuc !== undefined)) rows.push(['planted model AUC', ...runs.map((r) => r.plantedAuc?.toFixed(4) ?? '-')]);
  if (runs.some((r) => r.cache)) {
    rows.push(['row cache hit rate', ...runs.map((r) => (r.cache ? fmtPercent(r.cache.hitRate) : 'off'))]);
    rows.push(['cache saved/step', ...runs.map((r) => (r.cache ? perStep(r.cache.bytesSaved, r) : '-'))]);
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(w[c]!) : cell.padStart(w[c]!))).join('   ')).join('\n');
}

/** For the terminal: what was compared, the table, and the verdict. */
export function comparisonText(runs: RunSummary[]): string {
  const cfg = configRows(runs);
  const w = Math.max(...cfg.map(([k]) => k.length));
  return ['compared:', ...cfg.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`), '', comparisonTable(runs), '', 'verdict:', ...compareVerdict(runs).lines.map((l) => `  ${l}`)].join('\n');
}

function phaseNames(runs: RunSummary[]): string[] {
  return [...new Set(runs.flatMap((r) => Object.keys(r.phases)))];
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function reportHtml(runs: RunSummary[], title = 'hybridps: hybrid vs pure-PS'): string {
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const plots = plotSpecs(runs);
  // JSON inside <script>: escape "<" so a value can never close the tag.
  const data = JSON.stringify(plots).replace(/</g, '\\u003c');
  const config = configRows(runs).map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('');
  const verdict = compareVerdict(runs).lines.map((l) => `<li>${escapeHtml(l)}</li>`).join('');
  const cells = plots.map((p) => `  <div><h2>${escapeHtml(p.title)}</h2>${p.note ? `<p class="note">${escapeHtml(p.note)}</p>` : ''}<div id="${p.id}" class="plot"></div></div>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>${uplotCss}
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; max-width: 1240px; }
table { border-collapse: collapse; margin: 8px 0 16px; } td, th { padding: 3px 12px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; } .plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(580px, 1fr)); gap: 24px; }
h2 { font-size: 16px; margin: 0 0 4px; } .note { font-size: 12px; color: #666; margin: 0 0 6px; } #verdict li { margin: 4px 0; }
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<h2>What was compared</h2><table id="config">${config}</table>
<h2>Verdict</h2><ul id="verdict">${verdict}</ul>
<h2>The numbers</h2><pre id="summary">${escapeHtml(comparisonTable(runs))}</pre>
<div class="plots">
${cells}
</div>
<script>${uplotJs}</script>
<script>
const plots = ${data};
const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
// Axis labels in readable units (the same steps as src/util/units.ts).
const num = (v, d) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(d));
const units = {
  step: (v) => String(Math.round(v)), plain: (v) => (Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(Math.abs(v) >= 1 ? 2 : 3)),
  seconds: (v) => (v >= 120 ? num(v / 60, 1) + ' min' : num(v, v >= 10 ? 0 : 1) + ' s'), ms: (v) => (v >= 1000 ? num(v / 1000, 2) + ' s' : num(v, 1) + ' ms'),
  bytes: (v) => { for (const [n, u] of [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']]) if (Math.abs(v) >= n) return num(v / n, 1) + ' ' + u; return v.toFixed(0) + ' B'; },
};
// What the reader can see: points inside the drawn x and y ranges (the browser test reads these).
function countVisible(u, p) {
  const { min: x0, max: x1 } = u.scales.x, { min: y0, max: y1 } = u.scales.y;
  let n = 0;
  p.series.forEach((s) => s.values.forEach((v, i) => { if (v !== null && p.x[i] >= x0 && p.x[i] <= x1 && v >= y0 && v <= y1) n++; }));
  return n;
}
for (const p of plots) {
  const el = document.getElementById(p.id);
  const bars = p.kind === 'bars', n = p.series.length;
  const xLabel = { step: 'step', seconds: 'wall time', phase: 'phase' }[p.xUnit];
  const series = [{ label: xLabel, value: (u, v) => (v === null ? '-' : p.labels ? (p.labels[v] ?? '') : units[p.xUnit](v)) }, ...p.series.map((s, i) => ({
    label: s.label, stroke: colors[s.run], dash: s.dash, spanGaps: true, value: (u, v) => (v === null ? '-' : units[p.yUnit](v)),
    points: { show: p.kind === 'points' ? true : undefined, size: 7 },
    ...(bars ? { fill: colors[s.run] + '33', paths: uPlot.paths.bars({ size: [0.8 / n], align: i === 0 ? -1 : 1 }) } : {}),
  }))];
  const opts = {
    width: 580, height: 300, series,
    scales: { x: { time: false, ...(bars ? { range: [-0.6, p.x.length - 0.4] } : {}) }, y: p.yRange ? { range: p.yRange } : {} },
    axes: [
      { label: xLabel, values: (u, vals) => vals.map((v) => (p.labels ? (p.labels[v] ?? '') : units[p.xUnit](v))), ...(bars ? { incrs: [1] } : {}) },
      { size: 70, values: (u, vals) => vals.map((v) => units[p.yUnit](v)) },
    ],
    hooks: { draw: [(u) => { el.dataset.visible = String(countVisible(u, p)); }] },
  };
  new uPlot(opts, [p.x, ...p.series.map((s) => s.values)], el);
  el.dataset.drawn = String(p.series.reduce((a, s) => a + s.values.filter((v) => v !== null).length, 0));
}
</script></body></html>
`;
}

export async function writeReport(path: string, runs: RunSummary[]): Promise<void> {
  await writeBytesAtomic(path, reportHtml(runs));
}
