// The report's plots as data: every series computed here (smoothing, x grids, y ranges), so the
// page only mounts them and the numbers can be checked without a browser. Loss is smoothed with a
// bias-corrected exponential moving average and drawn on the range its post-warm-up values span:
// the first steps' loss (0.69 and more at the start, about 0.45 later on the synthetic set) would
// otherwise squash the curves that matter into a flat line at the bottom.
import type { RunSummary } from './compare-report.ts';

export type Unit = 'step' | 'seconds' | 'bytes' | 'ms' | 'plain' | 'phase';

export interface PlotSpec {
  id: string;
  title: string;
  /** Said under the title: the smoothing, what was clipped. */
  note?: string;
  x: number[];
  xUnit: Unit;
  yUnit: Unit;
  /** A fixed y range (otherwise uPlot fits the data). */
  yRange?: [number, number];
  /** Phase names (xUnit 'phase'). */
  labels?: string[];
  kind?: 'line' | 'bars' | 'points';
  series: { label: string; run: number; dash?: number[]; values: (number | null)[] }[];
}

/** Points of the run treated as warm-up when choosing the loss plots' y range. */
export const WARMUP_FRACTION = 0.1;

/** The EMA's span in steps: about a twentieth of the run, between 1 and 50. */
export function emaSpan(points: number): number {
  return Math.min(50, Math.max(1, Math.round(points / 20)));
}

/**
 * Exponential moving average with alpha = 2 / (span + 1), bias-corrected (divided by 1 - (1-alpha)^n,
 * as Adam does), so the first values are the raw ones rather than pulled toward zero.
 */
export function ema(values: number[], span: number): number[] {
  const alpha = 2 / (span + 1);
  let m = 0, w = 0;
  return values.map((v) => {
    m = (1 - alpha) * m + alpha * v;
    w = (1 - alpha) * w + alpha;
    return m / w;
  });
}

/** The union of the runs' x values, and each run's values on it (null where it has none). */
function merge(runs: { x: number[]; y: number[] }[]): { x: number[]; ys: (number | null)[][] } {
  const x = [...new Set(runs.flatMap((r) => r.x))].sort((p, q) => p - q);
  const ys = runs.map((r) => {
    const m = new Map<number, number>();
    r.x.forEach((xi, i) => m.set(xi, r.y[i]!));
    return x.map((xi) => m.get(xi) ?? null);
  });
  return { x, ys };
}

/** The y range of the smoothed loss after warm-up (5% padding), and how many earlier points lie above it. */
export function lossRange(smoothed: number[][]): { range: [number, number]; clipped: number; clippedMax: number } {
  const tails = smoothed.flatMap((s) => s.slice(Math.min(s.length - 1, Math.ceil(s.length * WARMUP_FRACTION))));
  let lo = Math.min(...tails), hi = Math.max(...tails);
  const pad = Math.max((hi - lo) * 0.05, Math.abs(hi) * 1e-3, 1e-6);
  lo -= pad; hi += pad;
  const above = smoothed.flat().filter((v) => v > hi);
  return { range: [lo, hi], clipped: above.length, clippedMax: above.length ? Math.max(...above) : hi };
}

/** Wall time at each evaluation's step, read off the run's step history. */
function evalWallSec(r: RunSummary): number[] {
  const at = new Map(r.history.step.map((s, i) => [s, r.history.wallSec[i]!]));
  return r.evals.map((e) => at.get(e.step) ?? r.history.wallSec[r.history.wallSec.length - 1] ?? 0);
}

export function plotSpecs(runs: RunSummary[]): PlotSpec[] {
  const spans = runs.map((r) => emaSpan(r.history.loss.length));
  const smoothed = runs.map((r, i) => ema(r.history.loss, spans[i]!));
  const plots: PlotSpec[] = [];
  if (smoothed.some((s) => s.length)) {
    const { range, clipped, clippedMax } = lossRange(smoothed.filter((s) => s.length));
    const note = `training loss (rank 0's batch), EMA over ${[...new Set(spans)].join('/')} steps (alpha = 2/(span+1), bias-corrected); `
      + `y range from the smoothed loss after the first ${WARMUP_FRACTION * 100}% of steps`
      + (clipped ? `; ${clipped} early point(s) above it, up to ${clippedMax.toFixed(3)}, are clipped` : '');
    for (const [id, xs, xUnit] of [['plot-loss-step', (r: RunSummary) => r.history.step, 'step'], ['plot-loss-time', (r: RunSummary) => r.history.wallSec, 'seconds']] as const) {
      const m = merge(runs.map((r, i) => ({ x: xs(r), y: smoothed[i]! })));
      plots.push({ id, title: `Loss (smoothed) against ${xUnit === 'step' ? 'step' : 'wall time'}`, note, x: m.x, xUnit, yUnit: 'plain', yRange: range,
        series: runs.map((r, i) => ({ label: r.mode, run: i, values: m.ys[i]! })) });
    }
  }
  // Held-out metrics, one point per evaluation; the last one is the final evaluation (all held-out samples).
  const evalNote = (metric: string) => `held-out ${metric} at each periodic evaluation (--eval-every, on --eval-samples samples) and the final one`;
  for (const [metric, key] of [['AUC', 'auc'], ['logloss', 'logloss']] as const) {
    for (const [xUnit, xs] of [['step', (r: RunSummary) => r.evals.map((e) => e.step)], ['seconds', evalWallSec]] as const) {
      const m = merge(runs.map((r) => ({ x: xs(r), y: r.evals.map((e) => e[key]) })));
      plots.push({ id: `plot-eval-${key}-${xUnit === 'step' ? 'step' : 'time'}`, title: `Held-out ${metric} against ${xUnit === 'step' ? 'step' : 'wall time'}`, note: evalNote(metric),
        x: m.x, xUnit, yUnit: 'plain', kind: 'points', series: runs.map((r, i) => ({ label: r.mode, run: i, values: m.ys[i]! })) });
    }
  }
  const kinds = [['pull', 'pullBytes'], ['push', 'pushBytes'], ['allreduce', 'allreduceBytes']] as const;
  const bytes = kinds.flatMap(([k, field], j) => runs.map((r, i) => ({ label: `${r.mode} ${k}`, run: i, dash: [[], [6, 4], [2, 3]][j]!, x: r.history.step, y: r.history[field] })));
  const mb = merge(bytes);
  plots.push({ id: 'plot-bytes', title: 'Bytes on the wire per step (rank 0)', x: mb.x, xUnit: 'step', yUnit: 'bytes',
    series: bytes.map((s, n) => ({ label: s.label, run: s.run, dash: s.dash, values: mb.ys[n]! })) });
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.phases)))];
  plots.push({ id: 'plot-phases', title: 'Time per step by phase (mean over workers)', x: names.map((_, i) => i), xUnit: 'phase', yUnit: 'ms', labels: names, kind: 'bars',
    series: runs.map((r, i) => ({ label: r.mode, run: i, values: names.map((n) => r.phases[n] ?? 0) })) });
  return plots;
}
