// Garbage collections counted by kind (a PerformanceObserver on 'gc'), for the benchmarks that
// report what a path allocates. Entries arrive between event-loop turns: await one before stop().
import { PerformanceObserver, constants } from 'node:perf_hooks';

/** Garbage collections (by kind) from now until stop(). */
export function gcObserver(): { stop(): { minor: number; major: number; ms: number } } {
  const out = { minor: 0, major: 0, ms: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) out.major++; else out.minor++;
      out.ms += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return { stop: () => { obs.disconnect(); out.ms = +out.ms.toFixed(1); return out; } };
}
