// What a hybrid-vs-pure-PS comparison compared and what its numbers say: the configuration (one
// value where the runs agree, each run's where they differ) and a short verdict computed from the
// summaries: which mode was faster and by how much, where the bytes went, whether the held-out
// accuracy differs beyond noise, and the row cache's hit rate. The terminal table and the HTML
// report both print these lines, so the two always tell the same story.
import type { RunSummary, RunEval } from './compare-report.ts';
import { fmtBytes, fmtCount, fmtMs, fmtPercent } from '../util/units.ts';

/** The configuration as (label, value) rows; a value differing between runs is given per mode. */
export function configRows(runs: RunSummary[]): [string, string][] {
  const row = (label: string, f: (r: RunSummary) => string): [string, string] => {
    const vals = runs.map(f);
    return [label, vals.every((v) => v === vals[0]) ? vals[0]! : runs.map((r, i) => `${r.mode}: ${vals[i]}`).join('; ')];
  };
  const opt = (r: RunSummary) => {
    const { optimizer: o, lr } = r.settings;
    return `embeddings ${o.emb} (lr ${lr.emb}), dense ${o.dense} (lr ${lr.dense})`;
  };
  return [
    ['modes', runs.map((r) => r.mode).join(' vs ')],
    row('model', (r) => r.model),
    row('data', (r) => `${r.data.path} (${fmtCount(r.data.lines)} lines)`),
    row('workers', (r) => String(r.workers)),
    row('servers', (r) => String(r.servers)),
    row('batch', (r) => `${r.settings.batch} per worker (${r.settings.batch * r.workers} per step)`),
    row('consistency', (r) => r.consistency),
    row('optimizers', opt),
    row('steps', (r) => String(r.steps)),
    row('held-out', (r) => { const f = finalEval(r); return f ? `${fmtCount(f.samples)} samples, ${fmtCount(f.positives)} positive` : 'none'; }),
  ];
}

/** The evaluation the final logloss/AUC came from: the last one over the most samples. */
export function finalEval(r: RunSummary): RunEval | undefined {
  let best: RunEval | undefined;
  for (const e of r.evals) if (!best || e.samples > best.samples || (e.samples === best.samples && e.step >= best.step)) best = e;
  return best;
}

/**
 * The standard error of an AUC measured on `pos` positives and `neg` negatives (Hanley & McNeil
 * 1982, the exponential approximation): what the same model scores differently on another draw of
 * a held-out set this size.
 */
export function aucStandardError(auc: number, pos: number, neg: number): number {
  if (pos < 1 || neg < 1) return Number.POSITIVE_INFINITY;
  const q1 = auc / (2 - auc), q2 = (2 * auc * auc) / (1 + auc);
  const v = (auc * (1 - auc) + (pos - 1) * (q1 - auc * auc) + (neg - 1) * (q2 - auc * auc)) / (pos * neg);
  return Math.sqrt(Math.max(v, 0));
}

export interface Verdict {
  /**
   * The faster mode and its throughput over the other's (1.2: 20% more samples/s); `call`: whether
   * rank 0's mean step times differ beyond their standard errors (NOISE_SE of them).
   */
  faster: { mode: string; than: string; ratio: number; call: 'beyond noise' | 'within noise' | 'unknown' };
  /** AUC difference (second run minus first), its standard error, and the call at two standard errors. */
  accuracy: { aucDiff: number; se: number; call: 'same' | 'different' | 'unknown' };
  lines: string[];
}

/** Differences under this many standard errors are "the same within noise" (about 95% for a normal). */
export const NOISE_SE = 2;

/** The verdict on two runs (the compare command's hybrid and pure-PS). */
export function compareVerdict(runs: RunSummary[]): Verdict {
  if (runs.length !== 2) throw new Error(`a verdict compares two runs (got ${runs.length})`);
  const [a, b] = runs as [RunSummary, RunSummary];
  const [fast, slow] = a.samplesPerSec >= b.samplesPerSec ? [a, b] : [b, a];
  const ratio = fast.samplesPerSec / Math.max(slow.samplesPerSec, 1e-9);
  const speed = speedCall(fast, slow);
  const lines = [
    `speed: ${fast.mode} was ${ratio.toFixed(2)}x as fast as ${slow.mode} (${fmtCount(fast.samplesPerSec)} vs ${fmtCount(slow.samplesPerSec)} samples/s, ${fmtPercent(ratio - 1)} more); ${speed.line}`,
  ];
  for (const r of runs) lines.push(`bytes: ${r.mode} ${bytesLine(r)}`);
  const perStep = (r: RunSummary) => (r.bytes.pull + r.bytes.push + r.bytes.allreduce) / Math.max(1, r.steps);
  const [more, less] = perStep(a) >= perStep(b) ? [a, b] : [b, a];
  if (perStep(less) > 0) lines.push(`bytes: ${more.mode} moved ${(perStep(more) / perStep(less)).toFixed(2)}x the bytes per step of ${less.mode}`);
  const accuracy = accuracyCall(a, b);
  lines.push(accuracy.line);
  for (const r of runs) {
    if (r.cache) lines.push(`row cache: ${r.mode} hit ${fmtPercent(r.cache.hitRate)} of ${fmtCount(r.cache.hits + r.cache.misses)} row reads, saving ${fmtBytes(r.cache.bytesSaved / Math.max(1, r.steps))} of pulls per step`);
  }
  return { faster: { mode: fast.mode, than: slow.mode, ratio, call: speed.call }, accuracy: { aucDiff: accuracy.aucDiff, se: accuracy.se, call: accuracy.call }, lines };
}

/** Mean and standard error of rank 0's step times (seconds), from its history's wall times. */
function stepTimeStats(r: RunSummary): { mean: number; se: number; n: number } {
  const w = r.history.wallSec, d = w.slice(1).map((t, i) => t - w[i]!);
  const n = d.length, mean = d.reduce((a, x) => a + x, 0) / Math.max(1, n);
  const variance = n > 1 ? d.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1) : Number.NaN;
  return { mean, se: Math.sqrt(variance / n), n };
}

/**
 * Whether the step times differ beyond their step-to-step spread. The runs ran one after the
 * other, so a machine that got busier in between moves them both ways: the line says so.
 */
function speedCall(fast: RunSummary, slow: RunSummary): { call: Verdict['faster']['call']; line: string } {
  const f = stepTimeStats(fast), s = stepTimeStats(slow);
  const se = Math.hypot(f.se, s.se);
  if (!Number.isFinite(se)) return { call: 'unknown', line: 'too few steps to tell the step-to-step spread' };
  const call = s.mean - f.mean > NOISE_SE * se ? 'beyond noise' : 'within noise';
  return {
    call,
    line: `mean step ${fmtMs(1000 * f.mean)} vs ${fmtMs(1000 * s.mean)}, standard error of the difference ${fmtMs(1000 * se)}: `
      + `${call === 'beyond noise' ? 'beyond' : 'within'} the step-to-step spread (criterion: more than ${NOISE_SE} SE; the runs ran one after the other, so rerun on a busy machine)`,
  };
}

function bytesLine(r: RunSummary): string {
  const total = r.bytes.pull + r.bytes.push + r.bytes.allreduce;
  const share = (n: number) => (total > 0 ? fmtPercent(n / total, 0) : '-');
  return `${fmtBytes(total / Math.max(1, r.steps))}/step on the wire (all workers): pull ${fmtBytes(r.bytes.pull / Math.max(1, r.steps))} (${share(r.bytes.pull)}), `
    + `push ${fmtBytes(r.bytes.push / Math.max(1, r.steps))} (${share(r.bytes.push)}), allreduce ${fmtBytes(r.bytes.allreduce / Math.max(1, r.steps))} (${share(r.bytes.allreduce)})`;
}

/**
 * Both runs are scored on the same held-out set; their AUCs' difference is set against
 * sqrt(SE_a^2 + SE_b^2), each SE from the set's positives and negatives. Treating the two as
 * independent overstates the noise of a paired difference, so "different" is a safe call and
 * "same" means "no difference this set can show".
 */
function accuracyCall(a: RunSummary, b: RunSummary): { aucDiff: number; se: number; call: Verdict['accuracy']['call']; line: string } {
  const ea = finalEval(a), eb = finalEval(b);
  const aucDiff = b.auc - a.auc, llDiff = b.logloss - a.logloss;
  const head = `accuracy: held-out AUC ${a.mode} ${a.auc.toFixed(4)}, ${b.mode} ${b.auc.toFixed(4)} (difference ${signed(aucDiff)}); logloss ${a.logloss.toFixed(4)} vs ${b.logloss.toFixed(4)} (${signed(llDiff)})`;
  if (!ea || !eb) return { aucDiff, se: Number.NaN, call: 'unknown', line: `${head}: no held-out evaluation counts, so no noise estimate` };
  const se = Math.hypot(aucStandardError(a.auc, ea.positives, ea.samples - ea.positives), aucStandardError(b.auc, eb.positives, eb.samples - eb.positives));
  if (!Number.isFinite(se)) return { aucDiff, se, call: 'unknown', line: `${head}: the held-out set has only one class, so AUC says nothing` };
  const call = Math.abs(aucDiff) > NOISE_SE * se ? 'different' : 'same';
  const why = `standard error ${se.toFixed(4)} from ${fmtCount(ea.samples)} held-out samples by Hanley-McNeil; criterion |difference| > ${NOISE_SE} SE`;
  return { aucDiff, se, call, line: `${head}: ${call === 'same' ? 'the same within noise' : 'differs beyond noise'} (${why})` };
}

const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;
