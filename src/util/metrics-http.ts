// Prometheus `/metrics` and a JSON `/status` for one role, over plain HTTP. The role's own stats
// objects are read at scrape time: monotonic totals as counters (`<name>_total`), current values
// as gauges, latencies as histograms (cumulative buckets, `_sum`, `_count`). prom-client renders
// the counters and gauges; the histograms are written here from snapshots, since prom-client's
// histograms only take observations and the roles already keep their own (util/histogram.ts).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, Gauge, Counter } from 'prom-client';
import type { HistogramSnapshot } from './histogram.ts';

export interface MetricsSource {
  /** Monotonic totals, e.g. { pulls: 10, rowsPulled: 4096 }: exported as `..._pulls_total`. */
  counters(): Record<string, number>;
  /** Values that go up and down (rows held, requests waiting, the view's epoch). */
  gauges?(): Record<string, number>;
  /** Latencies in milliseconds: exported in seconds, as Prometheus expects. */
  histograms?(): Record<string, HistogramSnapshot>;
  /** Anything JSON for /status. */
  status(): object;
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

function histogramText(metric: string, help: string, h: HistogramSnapshot): string {
  const lines = [`# HELP ${metric} ${help}`, `# TYPE ${metric} histogram`];
  let cumulative = 0;
  h.bounds.forEach((b, i) => { cumulative += h.counts[i]!; lines.push(`${metric}_bucket{le="${b / 1000}"} ${cumulative}`); });
  lines.push(`${metric}_bucket{le="+Inf"} ${h.count}`, `${metric}_sum ${h.sum / 1000}`, `${metric}_count ${h.count}`);
  return lines.join('\n') + '\n';
}

export async function serveMetrics(role: string, source: MetricsSource, port: number, host = '127.0.0.1'): Promise<{ url: string; server: Server }> {
  const registry = new Registry();
  const seen = new Set<string>();
  const ensure = () => {
    for (const name of Object.keys(source.counters())) {
      if (seen.has(name)) continue;
      seen.add(name);
      new Counter({
        name: `hybridps_${role}_${snake(name)}_total`, help: `${role} ${name} (total since start)`, registers: [registry],
        collect() { this.reset(); this.inc(source.counters()[name] ?? 0); },
      });
    }
    for (const name of Object.keys(source.gauges?.() ?? {})) {
      if (seen.has(name)) continue;
      seen.add(name);
      new Gauge({ name: `hybridps_${role}_${snake(name)}`, help: `${role} ${name}`, registers: [registry], collect() { this.set(source.gauges?.()[name] ?? 0); } });
    }
  };
  const server = createServer(async (req, res) => {
    try {
      if (req.url === '/metrics') {
        ensure();
        let text = await registry.metrics();
        for (const [name, h] of Object.entries(source.histograms?.() ?? {})) {
          text += histogramText(`hybridps_${role}_${snake(name)}_seconds`, `${role} ${name} latency`, h);
        }
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      } else if (req.url === '/status' || req.url === '/') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(source.status(), null, 2));
      } else {
        res.writeHead(404).end('not found: try /metrics or /status\n');
      }
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve); });
  const addr = server.address() as AddressInfo;
  return { url: `http://${host}:${addr.port}`, server };
}
