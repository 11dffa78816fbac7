// Binary-classification metrics for held-out evaluation: exact ROC AUC and log loss. Exact (not
// binned) AUC because the comparisons we report are a few thousandths apart; sums run in float64.

function checkLengths(what: string, a: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (a.length !== labels.length) throw new RangeError(`${what}: ${a.length} predictions but ${labels.length} labels`);
}

function isPositive(y: number, i: number): boolean {
  if (y === 1) return true;
  if (y === 0) return false;
  throw new RangeError(`label ${i} is ${y}; labels must be 0 or 1`);
}

/**
 * Exact ROC AUC = P(score of a random positive > score of a random negative), ties counting 1/2
 * (the Mann-Whitney U statistic with average ranks). NaN when only one class is present or any
 * score is NaN. Sorts the positives' and negatives' scores separately (native typed-array sort)
 * and merges them, so O(n log n) and fine for millions of samples.
 */
export function exactAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkLengths('exactAuc', scores, labels);
  const n = scores.length;
  let nPos = 0;
  for (let i = 0; i < n; i++) if (isPositive(labels[i]!, i)) nPos++;
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  const pos = new Float64Array(nPos), neg = new Float64Array(nNeg);
  for (let i = 0, p = 0, q = 0; i < n; i++) {
    const s = scores[i]!;
    if (Number.isNaN(s)) return NaN; // a diverged model: say so rather than rank NaN somewhere
    if (labels[i] === 1) pos[p++] = s; else neg[q++] = s;
  }
  pos.sort();
  neg.sort();
  // For each positive (ascending), negatives strictly below it count 1 and equal ones 1/2; both
  // pointers only move forward.
  let below = 0, upTo = 0, u = 0;
  for (let k = 0; k < nPos; k++) {
    const s = pos[k]!;
    while (below < nNeg && neg[below]! < s) below++;
    if (upTo < below) upTo = below;
    while (upTo < nNeg && neg[upTo]! <= s) upTo++;
    u += below + 0.5 * (upTo - below);
  }
  return u / (nPos * nNeg);
}

/** Mean binary cross-entropy of probabilities, each clamped to [eps, 1 - eps] so 0 and 1 stay finite. */
export function logloss(probs: ArrayLike<number>, labels: ArrayLike<number>, eps = 1e-7): number {
  checkLengths('logloss', probs, labels);
  const n = probs.length;
  if (n === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const p = Math.min(Math.max(probs[i]!, eps), 1 - eps);
    sum -= isPositive(labels[i]!, i) ? Math.log(p) : Math.log1p(-p);
  }
  return sum / n;
}

/**
 * Mean binary cross-entropy of logits z, computed as max(z, 0) - z*y + log1p(exp(-|z|)): exact
 * for any finite z (no overflow at |z| = 1000, no log(0)), unlike logloss(sigmoid(z)).
 */
export function loglossFromLogits(logits: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkLengths('loglossFromLogits', logits, labels);
  const n = logits.length;
  if (n === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const z = logits[i]!;
    const y = isPositive(labels[i]!, i) ? 1 : 0;
    sum += Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
  }
  return sum / n;
}

/** The logistic function, without overflow for large |z|. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}
