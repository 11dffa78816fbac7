// PS throughput on loopback: a 1M-row dim-64 table, 4096 unique random keys a request, pull and
// push from 1 and 2 client processes against 1 and 2 servers, next to plain `ws` moving the same
// bytes in the same run (no FlatBuffers, no table). Also server memory per row vs the ideal.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../src/launch/local-cluster.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { printTable } from './table.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
/** Extra Node flags for every process of the benchmark, e.g. BENCH_NODE_ARGS="--cpu-prof". */
const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

function runProc(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', file, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let last = '';
    createInterface({ input: p.stdout! }).on('line', (l) => { last = l; });
    p.on('exit', (code) => (code === 0 ? resolve(last ? JSON.parse(last) : {}) : reject(new Error(`${file} exited ${code}`))));
  });
}

export async function runPsBench(args: { json: boolean; quick?: boolean }): Promise<object> {
  const rows = args.quick ? 200_000 : 1_000_000, dim = 64, keys = 4096, rounds = args.quick ? 20 : 200;
  // Untimed rounds first (both ours and the baseline): steady state, not JIT warm-up, is measured.
  const warmup = args.quick ? 5 : 20;
  const valueBytes = keys * dim * 4, keyBytes = keys * 8;
  const results: Record<string, number | string>[] = [];
  let bytesPerRow = 0, idealBytesPerRow = 0;

  // Baseline server, reused for every configuration.
  const echo = spawn(process.execPath, ['--import', 'tsx', here('./raw-ws-echo.ts'), 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const echoUrl: string = await new Promise((resolve) => createInterface({ input: echo.stdout! }).on('line', (l) => {
    const m = /^HYBRIDPS_READY (.*)$/.exec(l); if (m) resolve(JSON.parse(m[1]!).url);
  }));

  try {
    for (const servers of [1, 2]) {
      const cluster = new LocalCluster({ servers, nodeArgs, log: (l) => { if (/ERROR/.test(l)) process.stderr.write(l + '\n'); } });
      await cluster.start();
      try {
        const env = { HYBRIDPS_SECRET: cluster.secret, SCHEDULER: cluster.schedulerUrl, SERVERS: String(servers), ROWS: String(rows), DIM: String(dim), KEYS: String(keys), ROUNDS: String(rounds), WARMUP: String(warmup) };
        process.stderr.write(`[bench ps] ${servers} server(s): filling ${rows} rows\n`);
        await runProc(here('./ps-client-proc.ts'), [], { ...env, MODE: 'fill', NODE_ID: 'filler' });
        for (const clients of [1, 2]) {
          process.stderr.write(`[bench ps] ${servers} server(s), ${clients} client(s)\n`);
          let t0 = performance.now();
          const ours = await Promise.all(Array.from({ length: clients }, (_, i) =>
            runProc(here('./ps-client-proc.ts'), [], { ...env, MODE: 'run', NODE_ID: `bench-${i}`, SEED: String(i + 1) })));
          const oursMs = Math.max(...ours.map((r) => r.pullMs! + r.pushMs!));
          t0 = performance.now();
          const raw = await Promise.all(Array.from({ length: clients }, () =>
            runProc(here('./raw-ws-echo.ts'), ['client', echoUrl, String(keyBytes), String(valueBytes), String(rounds), String(warmup)], {})));
          const rawMs = Math.max(...raw.map((r) => r.pullMs! + r.pushMs!));
          void t0;
          const payload = clients * rounds * 2 * valueBytes; // rows back on pull, rows out on push
          const payloadMBps = payload / 1e6 / (oursMs / 1000);
          const rawWsMBps = payload / 1e6 / (rawMs / 1000);
          results.push({
            servers, clients,
            rowsPerSec: Math.round((clients * rounds * 2 * keys) / (oursMs / 1000)),
            pullMs: +(ours.reduce((a, r) => a + r.pullMs!, 0) / clients / rounds).toFixed(2),
            pushMs: +(ours.reduce((a, r) => a + r.pushMs!, 0) / clients / rounds).toFixed(2),
            payloadMBps: +payloadMBps.toFixed(1), rawWsMBps: +rawWsMBps.toFixed(1), ratio: +(payloadMBps / rawWsMBps).toFixed(3),
          });
        }
        const probe = await PSClient.connect({ secret: new TextEncoder().encode(cluster.secret), schedulerUrl: cluster.schedulerUrl, nodeId: 'probe', role: 3 });
        await probe.waitForView((v) => v.servers.length === servers);
        const stats = (await probe.serverStats()) as { tables: { rows: number; bytesPerRow: number; idealBytesPerRow: number }[] }[];
        const totalRows = stats.reduce((a, s) => a + s.tables[0]!.rows, 0);
        bytesPerRow = stats.reduce((a, s) => a + s.tables[0]!.bytesPerRow * s.tables[0]!.rows, 0) / totalRows;
        idealBytesPerRow = stats[0]!.tables[0]!.idealBytesPerRow;
        await probe.close();
      } finally {
        await cluster.stop();
      }
    }
  } finally {
    echo.stdin!.end();
    echo.kill();
  }
  printTable('PS push/pull on loopback (dim 64, 4096 unique keys/request)', results);
  const best = results.reduce((a, r) => (Number(r.ratio) > Number(a.ratio) ? r : a));
  const summary = {
    bench: 'ps', rows, dim, keysPerRequest: keys, rounds, results,
    rowsPerSec: best.rowsPerSec, payloadMBps: best.payloadMBps, rawWsMBps: best.rawWsMBps,
    ratio: results.find((r) => r.servers === 1 && r.clients === 1)!.ratio,
    bytesPerRow: +bytesPerRow.toFixed(1), idealBytesPerRow, memoryRatio: +(bytesPerRow / idealBytesPerRow).toFixed(3),
    targets: { ratio: 0.5, memoryRatio: 1.25 },
  };
  console.log(`server memory: ${summary.bytesPerRow} bytes/row vs ideal ${idealBytesPerRow} (${summary.memoryRatio}x; target <= 1.25x)`);
  console.log(`payload throughput vs raw ws (1 server, 1 client): ${summary.ratio} (target >= 0.5)`);
  return summary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const json = process.argv.includes('--json');
  const s = await runPsBench({ json, quick: process.argv.includes('--quick') });
  if (json) console.log(JSON.stringify(s));
  process.exit(0);
}
