// Prometheus `/metrics` and a JSON `/status` for one role, over plain HTTP. Counters live in the
// role's own stats object; prom-client renders them (gauges whose value is read at scrape time).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, Gauge } from 'prom-client';

export interface MetricsSource {
  /** Flat numeric counters, e.g. { pulls: 10, rowsPulled: 4096 }. */
  counters(): Record<string, number>;
  /** Anything JSON for /status. */
  status(): object;
}

export async function serveMetrics(role: string, source: MetricsSource, port: number, host = '127.0.0.1'): Promise<{ url: string; server: Server }> {
  const registry = new Registry();
  const seen = new Set<string>();
  const ensureGauges = () => {
    for (const name of Object.keys(source.counters())) {
      if (seen.has(name)) continue;
      seen.add(name);
      const metric = `hybridps_${role}_${name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())}`;
      new Gauge({ name: metric, help: `${role} ${name}`, registers: [registry], collect() { this.set(source.counters()[name] ?? 0); } });
    }
  };
  const server = createServer(async (req, res) => {
    try {
      if (req.url === '/metrics') {
        ensureGauges();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(await registry.metrics());
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
