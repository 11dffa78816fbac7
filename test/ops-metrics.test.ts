// A server's /metrics as Prometheus reads it: totals are counters named `_total`, current values
// gauges, pull and push latencies histograms in seconds with cumulative buckets; the values follow
// the requests a worker made (real server, real client, real HTTP).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serveMetrics } from '../src/util/metrics-http.ts';
import { startCluster, table, keysOf } from './helpers/cluster.ts';

test('server /metrics: counters _total, gauges, latency histograms that count the requests', async () => {
  const cluster = await startCluster({ servers: 1 });
  const m = await serveMetrics('server', cluster.servers[0]!.metricsSource(), 0);
  try {
    const c = await cluster.client('worker-0');
    await c.declareTables([table({ id: 1, dim: 4, optimizer: 'sgd', hyper: { lr: 0.1 } })]);
    const keys = keysOf(1, 2, 3);
    for (let i = 0; i < 5; i++) await c.pull(1, keys);
    for (let i = 0; i < 3; i++) await c.push(1, keys, new Float32Array(12).fill(1));
    const text = await (await fetch(`${m.url}/metrics`)).text();
    const value = (line: string) => { const l = text.split('\n').find((x) => x.startsWith(line + ' ')); assert.ok(l, `no ${line} in\n${text}`); return Number(l!.split(' ')[1]); };
    assert.match(text, /# TYPE hybridps_server_pulls_total counter/);
    assert.is(value('hybridps_server_pulls_total'), 5);
    assert.is(value('hybridps_server_pushes_total'), 3);
    assert.is(value('hybridps_server_rows_pushed_total'), 9);
    assert.match(text, /# TYPE hybridps_server_rows gauge/);
    assert.is(value('hybridps_server_rows'), 3);
    assert.match(text, /# TYPE hybridps_server_pull_seconds histogram/);
    assert.is(value('hybridps_server_pull_seconds_count'), 5);
    assert.is(value('hybridps_server_push_seconds_count'), 3);
    assert.is(value('hybridps_server_pull_seconds_bucket{le="+Inf"}'), 5);
    // Buckets are cumulative: never decreasing, ending at the count.
    const buckets = text.split('\n').filter((l) => l.startsWith('hybridps_server_pull_seconds_bucket')).map((l) => Number(l.split(' ')[1]));
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]! >= buckets[i - 1]!, 'cumulative buckets');
    assert.ok(value('hybridps_server_pull_seconds_sum') > 0);
    assert.not.match(text, /hybridps_server_epoch_total/, 'the view epoch is a gauge, not a counter');
  } finally {
    m.server.close();
    await cluster.close();
  }
});

test.run();
