// Float64 CPU references for the GPU kernels in shaders/ (same layouts: row-major, W[out][in]).
// Inputs are f32 arrays (what the GPU sees); results are Float64Array.
import { mulberry32 } from '../../src/util/hash.ts';

type Arr = ArrayLike<number>;

/** Y[M,N] = act(X[M,K] W[N,K]^T + b[N]). */
export function linearFwd(x: Arr, w: Arr, b: Arr, M: number, N: number, K: number, relu: boolean): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b[n];
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = relu ? Math.max(s, 0) : s;
    }
  }
  return y;
}

/** G = dY masked by (Y > 0) when relu. */
export function maskedGrad(dy: Arr, y: Arr, relu: boolean): Float64Array {
  const g = Float64Array.from(dy);
  if (relu) for (let i = 0; i < g.length; i++) if (!(y[i] > 0)) g[i] = 0;
  return g;
}

/** dX[M,K] = G[M,N] W[N,K]. */
export function linearBwdInput(g: Arr, w: Arr, M: number, N: number, K: number): Float64Array {
  const dx = new Float64Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      const gv = g[m * N + n];
      if (gv === 0) continue;
      for (let k = 0; k < K; k++) dx[m * K + k] += gv * w[n * K + k];
    }
  }
  return dx;
}

/** dW[N,K] = G[M,N]^T X[M,K]. */
export function linearBwdWeight(g: Arr, x: Arr, M: number, N: number, K: number): Float64Array {
  const dw = new Float64Array(N * K);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      const gv = g[m * N + n];
      if (gv === 0) continue;
      for (let k = 0; k < K; k++) dw[n * K + k] += gv * x[m * K + k];
    }
  }
  return dw;
}

/** db[N] = sum over m of G[m,n]. */
export function biasGrad(g: Arr, M: number, N: number): Float64Array {
  const db = new Float64Array(N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) db[n] += g[m * N + n];
  return db;
}

/** out[b*outStride + outOffset + d] = sum/mean of rows[index[i]] over the bag (other columns untouched: NaN here). */
export function embeddingBag(rows: Arr, index: Arr, offsets: Arr, B: number, D: number, outStride: number, outOffset: number, mode: 0 | 1, out?: Float64Array): Float64Array {
  const o = out ?? new Float64Array(B * outStride).fill(NaN);
  for (let b = 0; b < B; b++) {
    const start = offsets[b], end = offsets[b + 1];
    for (let d = 0; d < D; d++) {
      let s = 0;
      for (let i = start; i < end; i++) s += rows[index[i] * D + d];
      if (mode === 1 && end > start) s /= end - start;
      o[b * outStride + outOffset + d] = s;
    }
  }
  return o;
}

/** The feature vectors of one sample: v_0 = z[b], v_t = e[b, t-1]. */
function featureVec(z: Arr, e: Arr, b: number, f: number, D: number, T: number, d: number): number {
  return f === 0 ? z[b * D + d] : e[(b * T + f - 1) * D + d];
}

/** [z, dot(v_i, v_j) for i in 1..F-1, j < i] per sample; out is [B, D + F(F-1)/2]. */
export function interactionFwd(z: Arr, e: Arr, B: number, D: number, T: number): Float64Array {
  const F = T + 1, P = (F * (F - 1)) / 2, W = D + P;
  const out = new Float64Array(B * W);
  for (let b = 0; b < B; b++) {
    for (let d = 0; d < D; d++) out[b * W + d] = z[b * D + d];
    let q = 0;
    for (let i = 1; i < F; i++) {
      for (let j = 0; j < i; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += featureVec(z, e, b, i, D, T, d) * featureVec(z, e, b, j, D, T, d);
        out[b * W + D + q++] = s;
      }
    }
  }
  return out;
}

/** Gradients of interactionFwd: dz[B,D], de[B,T,D]. */
export function interactionBwd(z: Arr, e: Arr, dout: Arr, B: number, D: number, T: number): { dz: Float64Array; de: Float64Array } {
  const F = T + 1, P = (F * (F - 1)) / 2, W = D + P;
  const dz = new Float64Array(B * D), de = new Float64Array(B * T * D);
  const dv = (b: number, f: number) => (f === 0 ? { a: dz, o: b * D } : { a: de, o: (b * T + f - 1) * D });
  for (let b = 0; b < B; b++) {
    for (let d = 0; d < D; d++) dz[b * D + d] += dout[b * W + d];
    let q = 0;
    for (let i = 1; i < F; i++) {
      for (let j = 0; j < i; j++) {
        const g = dout[b * W + D + q++];
        const vi = dv(b, i), vj = dv(b, j);
        for (let d = 0; d < D; d++) {
          vi.a[vi.o + d] += g * featureVec(z, e, b, j, D, T, d);
          vj.a[vj.o + d] += g * featureVec(z, e, b, i, D, T, d);
        }
      }
    }
  }
  return { dz, de };
}

/** Per-sample stable BCE on logits and dlogit = (sigmoid(x) - y) / B. */
export function bceFwdBwd(logits: Arr, labels: Arr, B: number): { loss: Float64Array; dlogits: Float64Array } {
  const loss = new Float64Array(B), dlogits = new Float64Array(B);
  for (let i = 0; i < B; i++) {
    const x = logits[i], y = labels[i];
    loss[i] = Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x)));
    const s = x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
    dlogits[i] = (s - y) / B;
  }
  return { loss, dlogits };
}

/** grads[u] = sum over the row's occurrences (sample b) of dout[b*outStride + outOffset ..], scaled by 1/bag size in mean mode. */
export function segmentSum(csrOffsets: Arr, csrItems: Arr, bagOffsets: Arr, dout: Arr, U: number, D: number, outStride: number, outOffset: number, mode: 0 | 1): Float64Array {
  const g = new Float64Array(U * D);
  for (let u = 0; u < U; u++) {
    for (let i = csrOffsets[u]; i < csrOffsets[u + 1]; i++) {
      const b = csrItems[i];
      const scale = mode === 1 ? 1 / Math.max(bagOffsets[b + 1] - bagOffsets[b], 1) : 1;
      for (let d = 0; d < D; d++) g[u * D + d] += scale * dout[b * outStride + outOffset + d];
    }
  }
  return g;
}

export interface OptimHyper {
  lr: number;
  weightDecay?: number;
  gradScale?: number;
}

export function sgdUpdate(param: Arr, grad: Arr, h: OptimHyper): Float64Array {
  const wd = h.weightDecay ?? 0, gs = h.gradScale ?? 1;
  return Float64Array.from(param, (w, i) => w - h.lr * (gs * grad[i] + wd * w));
}

export function adagradUpdate(param: Arr, grad: Arr, accum: Arr, h: OptimHyper & { eps?: number }): { param: Float64Array; accum: Float64Array } {
  const wd = h.weightDecay ?? 0, gs = h.gradScale ?? 1, eps = h.eps ?? 1e-10;
  const p = new Float64Array(param.length), a = new Float64Array(param.length);
  for (let i = 0; i < param.length; i++) {
    const g = gs * grad[i] + wd * param[i];
    a[i] = accum[i] + g * g;
    p[i] = param[i] - (h.lr * g) / (Math.sqrt(a[i]) + eps);
  }
  return { param: p, accum: a };
}

export function adamUpdate(param: Arr, grad: Arr, m: Arr, v: Arr, step: number, h: OptimHyper & { beta1?: number; beta2?: number; eps?: number; decoupled?: boolean }): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const b1 = h.beta1 ?? 0.9, b2 = h.beta2 ?? 0.999, eps = h.eps ?? 1e-8, wd = h.weightDecay ?? 0, gs = h.gradScale ?? 1;
  const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
  const P = new Float64Array(param.length), Mo = new Float64Array(param.length), V = new Float64Array(param.length);
  for (let i = 0; i < param.length; i++) {
    let w = param[i];
    let g = gs * grad[i];
    if (h.decoupled) w *= 1 - h.lr * wd;
    else g += wd * w;
    Mo[i] = b1 * m[i] + (1 - b1) * g;
    V[i] = b2 * v[i] + (1 - b2) * g * g;
    P[i] = w - (h.lr * (Mo[i] / bc1)) / (Math.sqrt(V[i] / bc2) + eps);
  }
  return { param: P, m: Mo, v: V };
}

// ---- random inputs and comparison ----

/** Small seeded PRNG (mulberry32) so a failing case can be replayed with TEST_SEED. */
export const rng = mulberry32;

export function testSeed(): number {
  const s = process.env.TEST_SEED ? Number(process.env.TEST_SEED) : (Date.now() ^ (process.pid << 8)) >>> 0;
  return s;
}

/** Uniform f32 values in [lo, hi). */
export function randF32(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export interface CloseReport {
  ok: boolean;
  maxErr: number;
  worst: number;
  nan: number;
  message: string;
}

/** Elementwise |got - want| <= tol (absolute); NaN in `got` always fails (outputs are NaN-poisoned). */
export function compareClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number | ((i: number) => number), label = ''): CloseReport {
  let maxErr = 0, worst = -1, nan = 0, bad = 0, firstBad = -1;
  if (got.length !== want.length) return { ok: false, maxErr: Infinity, worst: -1, nan: 0, message: `${label}: length ${got.length} != ${want.length}` };
  for (let i = 0; i < got.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w)) {
      // NaN in the reference marks positions the kernel must leave alone (still NaN-poisoned).
      if (!Number.isNaN(g)) { bad++; if (firstBad < 0) firstBad = i; }
      continue;
    }
    if (!Number.isFinite(g)) { nan++; if (firstBad < 0) firstBad = i; bad++; continue; }
    const err = Math.abs(g - w);
    const t = typeof tol === 'number' ? tol : tol(i);
    if (err > maxErr) { maxErr = err; worst = i; }
    if (err > t) { bad++; if (firstBad < 0) firstBad = i; }
  }
  const ok = bad === 0;
  const tolAt = (i: number) => (typeof tol === 'number' ? tol : tol(i));
  const message = ok
    ? `${label}: max err ${maxErr.toExponential(2)}`
    : `${label}: ${bad} of ${got.length} outside tolerance (${nan} non-finite); first at [${firstBad}] got ${got[firstBad]} want ${want[firstBad]} tol ${tolAt(firstBad).toExponential(2)}; max err ${maxErr.toExponential(2)} at [${worst}]`;
  return { ok, maxErr, worst, nan, message };
}
