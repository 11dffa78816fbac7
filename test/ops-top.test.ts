// `hybridps top` against a real cluster under load: one JSON object per poll with every server's
// request and row rates (from the servers' own counters), waiting pulls, p99 latencies and rows,
// and a sizing line; the hot-server and too-many-servers advice from the rates themselves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sizingAdvice, type TopRow } from '../src/launch/top.ts';
import { startCluster, table } from './helpers/cluster.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

test('top --once --json: rates and latencies of every server while a worker pushes', async () => {
  const cluster = await startCluster({ servers: 2 });
  let stop = false;
  try {
    const c = await cluster.client('worker-0');
    await c.declareTables([table({ id: 1, dim: 8, optimizer: 'sgd', hyper: { lr: 0.1 } })]);
    const keys = BigUint64Array.from({ length: 512 }, (_, i) => BigInt(i * 7 + 1));
    const grads = new Float32Array(512 * 8).fill(0.01);
    const load = (async () => { while (!stop) { await c.pull(1, keys); await c.push(1, keys, grads); } })();
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', MAIN, 'top', '--scheduler', cluster.scheduler.url, '--once', '--json', '--interval-s', '1'],
        { env: { ...process.env, HYBRIDPS_SECRET: 'test-secret-0123456789', HYBRIDPS_LOG: 'warn' } });
      let text = '', err = '';
      p.stdout.on('data', (b) => { text += b; });
      p.stderr.on('data', (b) => { err += b; });
      p.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`top exited ${code}: ${err}`))));
    });
    stop = true;
    await load;
    const r = JSON.parse(out.trim().split('\n').at(-1)!);
    assert.equal(r.servers.map((s: TopRow) => s.server).sort(), ['server-0', 'server-1']);
    for (const s of r.servers as TopRow[]) {
      assert.ok(s.reqPerS > 0, `${s.server} served requests`);
      assert.ok(s.rowsPerS > 0, `${s.server} moved rows`);
      assert.ok(s.pushP99Ms > 0 && s.pullP99Ms > 0, 'latency quantiles');
      assert.ok(s.rows > 0);
    }
    assert.type(r.advice, 'string');
  } finally {
    stop = true;
    await cluster.close();
  }
});

test('sizing advice: a hot server, too few, too many', () => {
  const row = (server: string, rowsPerS: number, busy: number): TopRow => ({ server, reqPerS: 1, rowsPerS, waitingPulls: 0, pullP99Ms: 1, pushP99Ms: 1, rows: 1, busy });
  assert.match(sizingAdvice([row('a', 900, 0.5), row('b', 50, 0.1), row('c', 50, 0.1)])!, /a carries 2\.7x the mean load/);
  assert.match(sizingAdvice([row('a', 100, 0.9), row('b', 100, 0.8)])!, /too few servers/);
  assert.match(sizingAdvice([row('a', 100, 0.01), row('b', 100, 0.02)])!, /fewer servers would do/);
  assert.is(sizingAdvice([row('a', 0, 0), row('b', 0, 0)]), null);
});

test.run();
