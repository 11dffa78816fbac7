// One benchmark client process: pull + push rounds of unique random keys (grouped by owner, as a
// worker's are) against a running cluster, then one JSON line with its timings (and its CPU time
// over the timed rounds) on stdout. `TIMED_START` on a line of its own marks the end of the warm-up: the bench samples the
// servers' CPU time from there to the JSON line.
import { PSClient } from '../src/client/ps-client.ts';
import { loadTls } from '../src/transport/index.ts';
import { Consistency } from '../src/wire/codec.ts';

const env = process.env;
const rows = Number(env.ROWS), dim = Number(env.DIM), keysPer = Number(env.KEYS), rounds = Number(env.ROUNDS);
// HYBRIDPS_TLS_* (bench ps --tls) make every link mutual TLS.
const client = await PSClient.connect({ secret: new TextEncoder().encode(env.HYBRIDPS_SECRET!), tls: loadTls(), schedulerUrl: env.SCHEDULER!, nodeId: env.NODE_ID, role: 3 });
await client.waitForView((v) => v.servers.length === Number(env.SERVERS));
// One table per optimizer (OPT: adagrad, sgd), so that both can be measured on one cluster.
const optimizer = env.OPT ?? 'adagrad', table = optimizer === 'sgd' ? 2 : 1;
await client.declareTables([{ id: table, name: `emb-${optimizer}`, dim, init: 'uniform', initScale: 0.01, seed: 1n, optimizer, hyper: { lr: 0.01 }, consistency: Consistency.ASP, staleness: 0 }]);

let seed = Number(env.SEED ?? 1) >>> 0 || 1;
const rand = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed % rows; };
function uniqueKeys(): BigUint64Array {
  const s = new Set<number>();
  while (s.size < keysPer) s.add(rand());
  return BigUint64Array.from(s, (k) => BigInt(k));
}

if (env.MODE === 'fill') {
  // Touch every row once so the table holds `rows` rows.
  for (let start = 0; start < rows; start += keysPer) {
    const n = Math.min(keysPer, rows - start);
    const keys = BigUint64Array.from({ length: n }, (_, i) => BigInt(start + i));
    await client.push(table, keys, new Float32Array(n * dim));
  }
} else {
  // Each batch's keys grouped by owning server once, before the timed rounds, as a worker's batch
  // prep does (and as ps-lite's baseline sorts its keys once: its servers own key ranges), so each
  // server's part of a pull or push is one contiguous run, not a gather and scatter per row
  // (4096 rows on 2 servers: ~2 ms of the client's CPU a round).
  const batches = Array.from({ length: Math.min(rounds, 16) }, () => client.groupByOwner(table, uniqueKeys()).keys);
  const grads = new Float32Array(keysPer * dim).fill(0.001);
  // Warm-up rounds, untimed: connections open and both ends' hot code compiled, so the timed
  // rounds measure steady state (the raw-ws baseline warms up the same way).
  for (let r = 0; r < Number(env.WARMUP ?? 0); r++) {
    await client.pull(table, batches[r % batches.length]!);
    await client.push(table, batches[r % batches.length]!, grads);
  }
  process.stdout.write('TIMED_START\n');
  const cpu0 = process.cpuUsage();
  let pullMs = 0, pushMs = 0;
  for (let r = 0; r < rounds; r++) {
    const keys = batches[r % batches.length]!;
    let t = performance.now();
    await client.pull(table, keys);
    pullMs += performance.now() - t;
    t = performance.now();
    await client.push(table, keys, grads);
    pushMs += performance.now() - t;
  }
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ pullMs, pushMs, cpuMs: (cpu.user + cpu.system) / 1000, rounds, keysPer, dim }) + '\n');
}
await client.close();
process.exit(0);
