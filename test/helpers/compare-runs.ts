// Constructed run summaries for the compare report's tests: a loss with the first steps' spike
// (5.0 at step 1, then a slow decay toward 0.4), periodic evaluations and a final one over the
// whole held-out set.
import type { RunSummary } from '../../src/launch/compare-report.ts';

export function constructedRun(mode: RunSummary['mode'], o: { speed?: number; auc?: number; heldOut?: number; steps?: number } = {}): RunSummary {
  const speed = o.speed ?? 1, auc = o.auc ?? 0.76, heldOut = o.heldOut ?? 20_000, n = o.steps ?? 300;
  const steps = Array.from({ length: n }, (_, i) => i + 1);
  const evalSteps = Array.from({ length: 10 }, (_, i) => Math.round(((i + 1) * n) / 10));
  return {
    mode, model: 'dlrm', consistency: 'bsp', workers: 2, servers: 2, steps: n, samplesPerSec: 1000 * speed, logloss: 0.45, auc,
    settings: { batch: 256, optimizer: { emb: 'adagrad', dense: 'adagrad' }, lr: { emb: 0.05, dense: 0.05 } },
    data: { path: '/data/synthetic.tsv', lines: 200_000 },
    bytes: { pull: 3e6 * n, push: 2.5e6 * n, allreduce: mode === 'hybrid' ? 2e6 * n : 0 },
    phases: { pull: 3 / speed, compute: 20, push: 2, dense: mode === 'hybrid' ? 4 : 9 },
    history: {
      step: steps, wallSec: steps.map((s) => s / (10 * speed)),
      // The spike: the first steps' loss far above the rest (a fresh model on a skewed batch).
      loss: steps.map((s) => (s <= 3 ? 5 / s : 0.4 + 0.1 * Math.exp(-s / 100) + 0.01 * Math.sin(s))),
      pullBytes: steps.map(() => 1.5e6), pushBytes: steps.map(() => 1.25e6), allreduceBytes: steps.map(() => (mode === 'hybrid' ? 1e6 : 0)),
    },
    evals: [
      ...evalSteps.map((s, i) => ({ step: s, samples: 4096, positives: 1024, logloss: 0.5 - 0.005 * i, auc: auc - 0.02 + 0.002 * i })),
      { step: n, samples: heldOut, positives: Math.round(heldOut / 4), logloss: 0.45, auc },
    ],
  };
}
