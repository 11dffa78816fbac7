// Random variates for the synthetic data's planted model: standard normals, Zipf ranks without a
// CDF table, and the exact modular arithmetic that scatters frequent ids over a table. Pure
// functions of a uniform source, so the generator (and a benchmark drawing ids with the same
// skew) get the same numbers from the same seed.

/** A uniform source on [0, 1). */
export type Rand = () => number;

/** Standard normals by Box-Muller, two per pair of uniforms. */
export function normals(rand: Rand): () => number {
  let spare = NaN;
  return () => {
    if (!Number.isNaN(spare)) { const s = spare; spare = NaN; return s; }
    const u = 1 - rand(), v = rand(); // u in (0, 1]: log(u) is finite
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/**
 * Zipf sampling over {1..n} with P(k) ~ k^-s in O(1) time and memory, by rejection-inversion
 * (Hörmann & Derflinger 1996, "Rejection-inversion to generate variates from monotone discrete
 * distributions"), so huge tables need no CDF array.
 */
export function zipfSampler(n: number, s: number, rand: Rand): () => number {
  const expm1x = (x: number) => (Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + x / 3 * (1 + x * 0.25)));
  const log1px = (x: number) => (Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - x * 0.25)));
  const h = (x: number) => Math.exp(-s * Math.log(x));
  const hIntegral = (x: number) => { const lx = Math.log(x); return expm1x((1 - s) * lx) * lx; };
  const hIntegralInverse = (x: number) => { let t = x * (1 - s); if (t < -1) t = -1; return Math.exp(log1px(t) * x); };
  const hX1 = hIntegral(1.5) - 1, hN = hIntegral(n + 0.5);
  const squeeze = 2 - hIntegralInverse(hIntegral(2.5) - h(2));
  return () => {
    for (;;) {
      const u = hN + rand() * (hX1 - hN);
      const x = hIntegralInverse(u);
      const k = Math.min(Math.max(Math.floor(x + 0.5), 1), n);
      if (k - x <= squeeze || u >= hIntegral(k + 0.5) - h(k)) return k;
    }
  };
}

/** a * b mod m for a, b < m <= 2^32, exactly (splitting b keeps every product below 2^53). */
export function mulMod(a: number, b: number, m: number): number {
  const hi = Math.floor(b / 65536), lo = b % 65536;
  return (((a * hi) % m) * 65536 + a * lo) % m;
}

export function gcd(a: number, b: number): number { while (b) [a, b] = [b, a % b]; return a; }

export function modInverse(a: number, m: number): number {
  let [r0, r1, t0, t1] = [m, a, 0, 1];
  while (r1 !== 0) { const q = Math.floor(r0 / r1); [r0, r1] = [r1, r0 - q * r1]; [t0, t1] = [t1, t0 - q * t1]; }
  return ((t0 % m) + m) % m;
}
