// A worker's /metrics from the events a real training worker reports: a small run on lavapipe
// (runTrainWorker against a real cluster), every event fed to WorkerMetrics as `hybridps worker
// --metrics-port` does, then the page read over HTTP: steps, samples and bytes as counters
// matching the worker's own result, loss and samples/s as gauges, one step-time observation per
// step in the histogram.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { runTrainWorker, type WorkerEvent } from '../src/train/worker.ts';
import { WorkerMetrics } from '../src/launch/worker-metrics.ts';
import { serveMetrics } from '../src/util/metrics-http.ts';
import { startCluster, SECRET } from './helpers/cluster.ts';
import { tmp, writeRandomCriteo, tinyConfig } from './helpers/train.ts';


test('worker /metrics: counters, gauges and the step histogram follow the training run', async () => {
  const dir = tmp('hps-wmetrics-');
  const data = writeRandomCriteo(join(dir, 'd.tsv'), 400, 3);
  const cfg = await tinyConfig(data, { steps: 6 });
  const cluster = await startCluster({ servers: cfg.servers });
  const wm = new WorkerMetrics();
  const m = await serveMetrics('worker', wm.source(() => ({ role: 'worker' })), 0);
  try {
    const events: WorkerEvent[] = [];
    const result = await runTrainWorker(cfg, { nodeId: 'worker-0', schedulerUrl: cluster.scheduler.url, secret: SECRET }, (e) => { events.push(e); wm.observe(e); });
    const text = await (await fetch(`${m.url}/metrics`)).text();
    const value = (name: string) => { const l = text.split('\n').find((x) => x.startsWith(name + ' ')); assert.ok(l, `no ${name} in\n${text}`); return Number(l!.split(' ')[1]); };
    assert.is(value('hybridps_worker_steps_total'), result.steps);
    assert.is(value('hybridps_worker_samples_total'), result.samples);
    assert.ok(value('hybridps_worker_pull_bytes_total') > 0);
    assert.match(text, /# TYPE hybridps_worker_loss gauge/);
    const lastLoss = [...events].reverse().find((e) => e.kind === 'progress');
    assert.ok(lastLoss && lastLoss.kind === 'progress');
    assert.ok(Math.abs(value('hybridps_worker_loss') - lastLoss.progress.loss) < 1e-9);
    assert.match(text, /# TYPE hybridps_worker_step_seconds histogram/);
    assert.is(value('hybridps_worker_step_seconds_count'), events.filter((e) => e.kind === 'progress').length);
    assert.ok(value('hybridps_worker_samples_per_sec') > 0);
  } finally {
    m.server.close();
    await cluster.close();
  }
});


test.run();
