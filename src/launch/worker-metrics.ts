// A worker's /metrics, folded from the events it already reports (src/train/worker.ts): steps and
// samples and bytes by kind as counters, the last loss and the samples/s of the last interval as
// gauges, the step time as a histogram (the step's phases summed, as the worker measured them),
// and the row cache's hits and misses once a result carries them. Nothing in the training loop
// knows about metrics: the role passes every event through `observe` on its way out.
import { LatencyHistogram } from '../util/histogram.ts';
import type { MetricsSource } from '../util/metrics-http.ts';
import type { WorkerEvent } from '../train/worker.ts';

export class WorkerMetrics {
  private readonly stepMs = new LatencyHistogram();
  private last: { step: number; samples: number; wallSec: number; loss: number; bytes: { pull: number; push: number; allreduce: number } } | null = null;
  private samplesPerSec = 0;
  private evals = 0;
  private checkpoints = 0;
  private cache = { hits: 0, misses: 0 };

  observe(e: WorkerEvent): void {
    if (e.kind === 'progress') {
      const p = e.progress;
      this.stepMs.observe(Object.values(p.ms).reduce((a, b) => a + b, 0));
      if (this.last && p.wallSec > this.last.wallSec) this.samplesPerSec = (p.samples - this.last.samples) / (p.wallSec - this.last.wallSec);
      this.last = { step: p.step, samples: p.samples, wallSec: p.wallSec, loss: p.loss, bytes: { ...p.bytes } };
    } else if (e.kind === 'eval') this.evals++;
    else if (e.kind === 'checkpoint') this.checkpoints++;
    else if (e.result.cache) this.cache = { hits: e.result.cache.hits, misses: e.result.cache.misses };
  }

  source(status: () => object): MetricsSource {
    return {
      counters: () => ({
        steps: this.last?.step ?? 0, samples: this.last?.samples ?? 0, evaluations: this.evals, checkpoints: this.checkpoints,
        pullBytes: this.last?.bytes.pull ?? 0, pushBytes: this.last?.bytes.push ?? 0, allreduceBytes: this.last?.bytes.allreduce ?? 0,
        cacheHits: this.cache.hits, cacheMisses: this.cache.misses,
      }),
      gauges: () => ({ loss: this.last?.loss ?? 0, samplesPerSec: this.samplesPerSec }),
      histograms: () => ({ step: this.stepMs.snapshot() }),
      status,
    };
  }
}
