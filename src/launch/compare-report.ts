// The hybrid-vs-pure-PS report: a terminal table and one self-contained HTML page (uPlot and its
// CSS inlined, data embedded as JSON) that opens from disk with no server and no network.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { writeBytesAtomic } from '../checkpoint/atomic-file.ts';

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

export interface RunSummary {
  mode: 'hybrid' | 'pure-ps';
  consistency: string;
  workers: number;
  servers: number;
  steps: number;
  samplesPerSec: number;
  logloss: number;
  auc: number;
  bytes: { pull: number; push: number; allreduce: number };
  /** Mean milliseconds per step by phase (pull, upload, compute, download, push, dense...). */
  phases: Record<string, number>;
  history: RunHistory;
  plantedAuc?: number;
  /** The workers' row caches (src/worker/row-cache.ts), summed; absent when no table was cached. */
  cache?: RunCacheSummary;
}

export interface RunCacheSummary { hitRate: number; hits: number; misses: number; evictions: number; bytesSaved: number }

export function comparisonTable(runs: RunSummary[]): string {
  const rows: [string, ...string[]][] = [
    ['', ...runs.map((r) => r.mode)],
    ['samples/s', ...runs.map((r) => r.samplesPerSec.toFixed(0))],
    ['pull bytes/step', ...runs.map((r) => fmtBytes(r.bytes.pull / Math.max(1, r.steps)))],
    ['push bytes/step', ...runs.map((r) => fmtBytes(r.bytes.push / Math.max(1, r.steps)))],
    ['allreduce bytes/step', ...runs.map((r) => fmtBytes(r.bytes.allreduce / Math.max(1, r.steps)))],
    ...phaseNames(runs).map((p): [string, ...string[]] => [`${p} ms/step`, ...runs.map((r) => (r.phases[p] ?? 0).toFixed(2))]),
    ['logloss', ...runs.map((r) => r.logloss.toFixed(4))],
    ['AUC', ...runs.map((r) => r.auc.toFixed(4))],
  ];
  if (runs.some((r) => r.cache)) {
    rows.push(['row cache hit rate', ...runs.map((r) => (r.cache ? `${(100 * r.cache.hitRate).toFixed(1)}%` : 'off'))]);
    rows.push(['cache saved/step', ...runs.map((r) => (r.cache ? fmtBytes(r.cache.bytesSaved / Math.max(1, r.steps)) : '-'))]);
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(w[c]!) : cell.padStart(w[c]!))).join('   ')).join('\n');
}

function phaseNames(runs: RunSummary[]): string[] {
  return [...new Set(runs.flatMap((r) => Object.keys(r.phases)))];
}

function fmtBytes(b: number): string {
  if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(2)} MiB`;
  if (b >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${b.toFixed(0)} B`;
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function reportHtml(runs: RunSummary[], title = 'hybridps: hybrid vs pure-PS'): string {
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  // JSON inside <script>: escape "<" so a value can never close the tag.
  const data = JSON.stringify(runs).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>${uplotCss}
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 12px 0 24px; } td, th { padding: 4px 12px; border-bottom: 1px solid #ddd; text-align: right; }
td:first-child, th:first-child { text-align: left; } .plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 24px; }
h2 { font-size: 16px; margin: 0 0 4px; }
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<pre id="summary">${escapeHtml(comparisonTable(runs))}</pre>
<div class="plots">
  <div><h2>Loss against step</h2><div id="plot-loss-step" class="plot"></div></div>
  <div><h2>Loss against wall time (s)</h2><div id="plot-loss-time" class="plot"></div></div>
  <div><h2>Bytes on the wire per step</h2><div id="plot-bytes" class="plot"></div></div>
  <div><h2>Time per step by phase (ms)</h2><div id="plot-phases" class="plot"></div></div>
</div>
<script>${uplotJs}</script>
<script>
const runs = ${data};
const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
const opts = (title, series, extra = {}) => ({ width: 560, height: 300, title, series: [{}, ...series], scales: { x: { time: false } }, axes: [{}, { size: 70 }], ...extra });
function mount(id, o, d) { const el = document.getElementById(id); const u = new uPlot(o, d, el); el.dataset.drawn = String(d[0].length); return u; }
// Loss against step: one x axis (the union of steps) and one series per run.
(function () {
  const xs = [...new Set(runs.flatMap((r) => r.history.step))].sort((a, b) => a - b);
  const ys = runs.map((r) => { const m = new Map(r.history.step.map((s, i) => [s, r.history.loss[i]])); return xs.map((x) => m.has(x) ? m.get(x) : null); });
  mount('plot-loss-step', opts('', runs.map((r, i) => ({ label: r.mode, stroke: colors[i], spanGaps: true }))), [xs, ...ys]);
})();
// Loss against wall time: each run on its own time grid, merged.
(function () {
  const xs = [...new Set(runs.flatMap((r) => r.history.wallSec))].sort((a, b) => a - b);
  const ys = runs.map((r) => { const m = new Map(r.history.wallSec.map((t, i) => [t, r.history.loss[i]])); return xs.map((x) => m.has(x) ? m.get(x) : null); });
  mount('plot-loss-time', opts('', runs.map((r, i) => ({ label: r.mode, stroke: colors[i], spanGaps: true }))), [xs, ...ys]);
})();
// Bytes per step by kind, one series per (run, kind).
(function () {
  const xs = [...new Set(runs.flatMap((r) => r.history.step))].sort((a, b) => a - b);
  const series = [], data = [xs];
  runs.forEach((r, i) => ['pullBytes', 'pushBytes', 'allreduceBytes'].forEach((k, j) => {
    const m = new Map(r.history.step.map((s, n) => [s, r.history[k][n]]));
    series.push({ label: r.mode + ' ' + k.replace('Bytes', ''), stroke: colors[i], dash: [[], [6, 4], [2, 3]][j], spanGaps: true });
    data.push(xs.map((x) => m.has(x) ? m.get(x) : null));
  }));
  mount('plot-bytes', opts('', series), data);
})();
// Phase breakdown: x = phase index, one bar-like stepped series per run.
(function () {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.phases)))];
  const xs = names.map((_, i) => i);
  const ys = runs.map((r) => names.map((n) => r.phases[n] ?? 0));
  mount('plot-phases', opts('', runs.map((r, i) => ({ label: r.mode, stroke: colors[i], fill: colors[i] + '33', paths: uPlot.paths.bars({ size: [0.8 / runs.length], align: i === 0 ? -1 : 1 }) })),
    { axes: [{ values: (u, vals) => vals.map((v) => names[v] ?? ''), incrs: [1] }, { size: 70 }], scales: { x: { time: false, range: [-0.6, names.length - 0.4] } } }), [xs, ...ys]);
})();
</script></body></html>
`;
}

export async function writeReport(path: string, runs: RunSummary[]): Promise<void> {
  await writeBytesAtomic(path, reportHtml(runs));
}
