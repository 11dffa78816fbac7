// A latency histogram with fixed bucket bounds (milliseconds), cheap enough to observe every
// request: one comparison loop over 16 bounds and two adds. Exported as a Prometheus histogram
// (cumulative buckets, _sum, _count) by metrics-http.ts, and read for percentiles by `/status`.

/** Bucket upper bounds in ms: from 0.1 ms (a cached pull) to 10 s (a stalled barrier). */
export const LATENCY_BOUNDS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const;

export interface HistogramSnapshot { bounds: readonly number[]; counts: number[]; sum: number; count: number }

export class LatencyHistogram {
  /** counts[i]: observations <= bounds[i] and > bounds[i-1]; the last one: above every bound. */
  private readonly counts = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  private sum = 0;
  private count = 0;

  observe(ms: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.sum += ms;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    return { bounds: LATENCY_BOUNDS_MS, counts: [...this.counts], sum: this.sum, count: this.count };
  }

  /** The bucket bound below which a fraction q of observations fall (an upper estimate), or 0. */
  quantile(q: number): number {
    const want = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= want && seen > 0) return LATENCY_BOUNDS_MS[i] ?? Infinity;
    }
    return 0;
  }
}
