// PS throughput on loopback: a 1M-row dim-64 table, 4096 unique random keys a request (grouped by
// owning server once, before the timed rounds, as a worker's batch prep groups them and as the
// ps-lite baseline sorts its keys), pull and push (AdaGrad; SGD as a second row) from 1 and 2
// client processes against 1 and 2 servers, next to plain `ws` moving the same bytes (no
// FlatBuffers, no table) and to ps-lite doing the same work in C++ (bench/pslite/, when built),
// all in the same run. Also server memory per row.
// With --tls, every configuration runs again over mutual TLS (a throwaway CA, `launch --tls`'s
// certificates) in the same run, and each TLS row says its rows/s against the plain row's.
// Where the time goes, for ours and ps-lite alike: the servers' CPU time (sampled from /proc over
// the timed rounds) and the clients' (their own count), per pull + push round of one client; what
// a round's wall time has beyond them is time neither side was running (the kernel's wake-ups
// and scheduling, waits for a core). The raw ws baseline's CPU is counted the same way.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LocalCluster } from '../src/launch/local-cluster.ts';
import { ROLE_V8_FLAGS } from '../src/util/package-files.ts'; // the client runs as a worker runs
import { PSClient } from '../src/client/ps-client.ts';
import { printTable } from './table.ts';
import { PSLITE_HOWTO, psliteBuilt, runPslite } from './pslite-baseline.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLocalTls, tlsEnv } from '../src/launch/tls-certs.ts';
import { loadTls } from '../src/transport/index.ts';
import { cpuMsOfAll } from './proc-cpu.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
/** Extra Node flags for every process of the benchmark, e.g. BENCH_NODE_ARGS="--cpu-prof". */
const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

function runProc(file: string, args: string[], env: NodeJS.ProcessEnv, onLine?: (l: string) => void): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...ROLE_V8_FLAGS, ...nodeArgs, '--import', 'tsx', file, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let last = '';
    createInterface({ input: p.stdout! }).on('line', (l) => { last = l; onLine?.(l); });
    p.on('close', (code) => (code === 0 ? resolve(last ? JSON.parse(last) : {}) : reject(new Error(`${file} exited ${code}`))));
  });
}

/**
 * Runs `clients` benchmark clients at once and samples the CPU time of `serverPids` from the first
 * client's TIMED_START to the last client's result: the servers' CPU over the timed rounds.
 */
async function runClients(clients: number, serverPids: number[], proc: (i: number) => { file: string; args: string[]; env: NodeJS.ProcessEnv }): Promise<{ results: Record<string, number>[]; serverCpuMs: number }> {
  let started = 0, finished = 0, cpu0 = NaN, cpu1 = NaN;
  const onLine = (l: string) => {
    if (l === 'TIMED_START' && started++ === 0) cpu0 = cpuMsOfAll(serverPids);
    else if (l.startsWith('{') && ++finished === clients) cpu1 = cpuMsOfAll(serverPids);
  };
  const results = await Promise.all(Array.from({ length: clients }, (_, i) => { const p = proc(i); return runProc(p.file, p.args, p.env, onLine); }));
  return { results, serverCpuMs: cpu1 - cpu0 };
}

/** The slowest process's pull + push time: the run takes as long as it. */
const slowest = (rs: Record<string, number>[]) => Math.max(...rs.map((r) => r.pullMs! + r.pushMs!));
const mean = (rs: Record<string, number>[], k: string, rounds: number) => +(rs.reduce((a, r) => a + r[k]!, 0) / rs.length / rounds).toFixed(2);
/** The servers' CPU per round of one client (a round served: one pull and one push of `keys` rows). */
const perRound = (cpuMs: number, clients: number, rounds: number) => +(cpuMs / clients / rounds).toFixed(2);

export async function runPsBench(args: { json: boolean; quick?: boolean; tls?: boolean }): Promise<object> {
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

  const pslite = psliteBuilt();
  if (!pslite) process.stderr.write(`[bench ps] ${PSLITE_HOWTO}\n`);
  const tlsDir = args.tls ? mkdtempSync(join(tmpdir(), 'hybridps-bench-tls-')) : '';
  const pki = args.tls ? makeLocalTls(tlsDir) : undefined;
  try {
    for (const [servers, tls] of [1, 2].flatMap((s) => (pki ? [[s, false], [s, true]] as const : [[s, false]] as const))) {
      const cluster = new LocalCluster({ servers, nodeArgs, tls: tls ? pki : undefined, log: (l) => { if (/ERROR/.test(l)) process.stderr.write(l + '\n'); } });
      await cluster.start();
      const plainRow = (optimizer: string, clients: number) => results.find((r) => r.tls === 'no' && r.servers === servers && r.clients === clients && r.optimizer === optimizer);
      try {
        const env = { ...(tls ? tlsEnv(pki!, 'worker') : {}), HYBRIDPS_SECRET: cluster.secret, SCHEDULER: cluster.schedulerUrl, SERVERS: String(servers), ROWS: String(rows), DIM: String(dim), KEYS: String(keys), ROUNDS: String(rounds), WARMUP: String(warmup) };
        // AdaGrad (the issue's configuration) at every shape; SGD as a second row at 1 x 1.
        const runs = [...[1, 2].map((clients) => ({ optimizer: 'adagrad' as const, clients })), ...(servers === 1 ? [{ optimizer: 'sgd' as const, clients: 1 }] : [])];
        for (const optimizer of new Set(runs.map((r) => r.optimizer))) {
          process.stderr.write(`[bench ps] ${servers} server(s): filling ${rows} rows (${optimizer})\n`);
          await runProc(here('./ps-client-proc.ts'), [], { ...env, MODE: 'fill', NODE_ID: 'filler', OPT: optimizer });
        }
        for (const { optimizer, clients } of runs) {
          process.stderr.write(`[bench ps] ${servers} server(s), ${clients} client(s), ${optimizer}${tls ? ', TLS' : ''}\n`);
          const serverPids = cluster.children.filter((c) => c.role === 'server').map((c) => c.pid);
          const run = await runClients(clients, serverPids, (i) => ({ file: here('./ps-client-proc.ts'), args: [], env: { ...env, MODE: 'run', NODE_ID: `bench-${i}`, SEED: String(i + 1), OPT: optimizer } }));
          const ours = run.results;
          const rowsMoved = clients * rounds * 2 * keys; // rows back on pull, rows out on push
          if (tls) {
            // The baselines are plain; the TLS row is read against the plain row of this run.
            const rowsPerSec = Math.round(rowsMoved / (slowest(ours) / 1000));
            results.push({ optimizer, servers, clients, tls: 'yes', rowsPerSec, pullMs: mean(ours, 'pullMs', rounds), pushMs: mean(ours, 'pushMs', rounds),
              serverCpuMs: perRound(run.serverCpuMs, clients, rounds), clientCpuMs: mean(ours, 'cpuMs', rounds),
              payloadMBps: '-', rawWsMBps: '-', ratio: '-', vsPlain: +(rowsPerSec / Number(plainRow(optimizer, clients)!.rowsPerSec)).toFixed(3) });
            continue;
          }
          const rawRun = await runClients(clients, [echo.pid!], () => ({ file: here('./raw-ws-echo.ts'), args: ['client', echoUrl, String(keyBytes), String(valueBytes), String(rounds), String(warmup)], env: {} }));
          const raw = rawRun.results;
          const oursMs = slowest(ours), rawMs = slowest(raw);
          const payloadMBps = rowsMoved * dim * 4 / 1e6 / (oursMs / 1000);
          const rawWsMBps = rowsMoved * dim * 4 / 1e6 / (rawMs / 1000);
          const row: Record<string, number | string> = {
            optimizer, servers, clients, ...(pki ? { tls: 'no' } : {}),
            rowsPerSec: Math.round(rowsMoved / (oursMs / 1000)),
            pullMs: mean(ours, 'pullMs', rounds), pushMs: mean(ours, 'pushMs', rounds),
            serverCpuMs: perRound(run.serverCpuMs, clients, rounds), clientCpuMs: mean(ours, 'cpuMs', rounds),
            payloadMBps: +payloadMBps.toFixed(1), rawWsMBps: +rawWsMBps.toFixed(1), ratio: +(payloadMBps / rawWsMBps).toFixed(3),
            rawServerCpuMs: perRound(rawRun.serverCpuMs, clients, rounds), rawClientCpuMs: mean(raw, 'cpuMs', rounds),
            ...(pki ? { vsPlain: '-' } : {}),
          };
          if (pslite) {
            process.stderr.write(`[bench ps] ps-lite: ${servers} server(s), ${clients} worker(s), ${optimizer}\n`);
            const psRun = await runPslite(servers, clients, { rows, dim, keys, rounds, warmup, optimizer, lr: 0.01 }), ps = psRun.workers;
            row.psliteRowsPerSec = Math.round(rowsMoved / (slowest(ps) / 1000));
            row.pslitePullMs = mean(ps, 'pullMs', rounds);
            row.pslitePushMs = mean(ps, 'pushMs', rounds);
            row.psliteServerCpuMs = perRound(psRun.serverCpuMs, clients, rounds);
            row.psliteClientCpuMs = mean(ps, 'cpuMs', rounds);
            row.vsPslite = +(Number(row.rowsPerSec) / row.psliteRowsPerSec).toFixed(3);
          }
          results.push(row);
        }
        if (tls) continue; // memory per row: measured once, on the plain clusters
        const probe = await PSClient.connect({ secret: new TextEncoder().encode(cluster.secret), schedulerUrl: cluster.schedulerUrl, nodeId: 'probe', role: 3 });
        await probe.waitForView((v) => v.servers.length === servers);
        const stats = (await probe.serverStats()) as { tables: { name: string; rows: number; bytesPerRow: number; idealBytesPerRow: number }[] }[];
        const adagrad = stats.map((s) => s.tables.find((t) => t.name === 'emb-adagrad')!);
        const totalRows = adagrad.reduce((a, t) => a + t.rows, 0);
        bytesPerRow = adagrad.reduce((a, t) => a + t.bytesPerRow * t.rows, 0) / totalRows;
        idealBytesPerRow = adagrad[0]!.idealBytesPerRow;
        await probe.close();
      } finally {
        await cluster.stop();
      }
    }
  } finally {
    echo.stdin!.end();
    echo.kill();
    if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
  }
  printTable('PS push/pull on loopback (dim 64, 4096 unique keys/request)', results);
  const plain = results.filter((r) => r.tls !== 'yes');
  const best = plain.reduce((a, r) => (Number(r.ratio) > Number(a.ratio) ? r : a)); // plain rows only: the baselines are plain
  const main = plain.find((r) => r.optimizer === 'adagrad' && r.servers === 1 && r.clients === 1)!;
  const mainTls = results.find((r) => r.tls === 'yes' && r.optimizer === 'adagrad' && r.servers === 1 && r.clients === 1);
  const summary = {
    bench: 'ps', rows, dim, keysPerRequest: keys, rounds, results,
    rowsPerSec: best.rowsPerSec, payloadMBps: best.payloadMBps, rawWsMBps: best.rawWsMBps,
    ratio: main.ratio,
    // Ours over ps-lite, AdaGrad, 1 server x 1 client (the issue's target); null without the binary.
    vsPslite: main.vsPslite ?? null,
    // With --tls: rows/s over mutual TLS over plain rows/s, AdaGrad, 1 server x 1 client; null without.
    tlsVsPlain: mainTls?.vsPlain ?? null,
    // Where a round goes at AdaGrad 1 x 1, ms: wall (pull + push), the server's CPU, the client's CPU.
    breakdown: {
      ours: { wallMs: +(Number(main.pullMs) + Number(main.pushMs)).toFixed(2), serverCpuMs: main.serverCpuMs, clientCpuMs: main.clientCpuMs },
      // The same bytes over plain ws, no FlatBuffers, no table: what the transport alone costs.
      rawWs: { wallMs: +((2 * keys * dim * 4) / 1e3 / Number(main.rawWsMBps)).toFixed(2), serverCpuMs: main.rawServerCpuMs, clientCpuMs: main.rawClientCpuMs },
      pslite: main.pslitePullMs === undefined ? null
        : { wallMs: +(Number(main.pslitePullMs) + Number(main.pslitePushMs)).toFixed(2), serverCpuMs: main.psliteServerCpuMs, clientCpuMs: main.psliteClientCpuMs },
    },
    bytesPerRow: +bytesPerRow.toFixed(1), idealBytesPerRow, memoryRatio: +(bytesPerRow / idealBytesPerRow).toFixed(3),
    targets: { ratio: 0.5, memoryRatio: 1.25, vsPslite: 1.5 },
  };
  console.log(`server memory: ${summary.bytesPerRow} bytes/row vs ideal ${idealBytesPerRow} (${summary.memoryRatio}x; target <= 1.25x)`);
  console.log(`payload throughput vs raw ws (adagrad, 1 server, 1 client): ${summary.ratio} (target >= 0.5)`);
  if (mainTls) console.log(`rows/s over mutual TLS vs plain (adagrad, 1 server, 1 client): ${mainTls.vsPlain}`);
  console.log(pslite ? `rows/s vs ps-lite (adagrad, 1 server, 1 client): ${summary.vsPslite} (target >= 1.5)` : `[bench ps] ${PSLITE_HOWTO}`);
  const b = summary.breakdown, line = (w: string, x: { wallMs: number; serverCpuMs: unknown; clientCpuMs: unknown }) =>
    `${w}: ${x.wallMs} ms a round, server CPU ${x.serverCpuMs} ms, client CPU ${x.clientCpuMs} ms`;
  console.log(`where a round goes (adagrad, 1 server, 1 client): ${line('ours', b.ours)}; ${line('raw ws', b.rawWs)}${b.pslite ? `; ${line('ps-lite', b.pslite)}` : ''}`);
  return summary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const json = process.argv.includes('--json');
  const s = await runPsBench({ json, quick: process.argv.includes('--quick'), tls: process.argv.includes('--tls') });
  if (json) console.log(JSON.stringify(s));
  process.exit(0);
}
