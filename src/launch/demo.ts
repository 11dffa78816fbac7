// The push/pull demo: a local cluster, one table, a few rounds of pull -> push -> clock from
// this process acting as a worker, with the numbers a new user wants to see.
import { LocalCluster } from './local-cluster.ts';
import { PSClient } from '../client/ps-client.ts';
import { Consistency } from '../wire/codec.ts';

export async function runDemo(opts: { servers: number; rows: number; dim: number; keysPerRequest: number; rounds: number; json: boolean }): Promise<void> {
  const cluster = new LocalCluster({ servers: opts.servers, log: (l) => { if (/WARN|ERROR/.test(l)) process.stderr.write(l + '\n'); } });
  await cluster.start();
  const client = await PSClient.connect({ secret: new TextEncoder().encode(cluster.secret), schedulerUrl: cluster.schedulerUrl, nodeId: 'demo-worker' });
  try {
    await client.waitForView((v) => v.servers.length === opts.servers && v.workers.length === 1);
    await client.declareTables([{ id: 1, name: 'emb', dim: opts.dim, init: 'uniform', initScale: 0.01, seed: 42n,
      optimizer: 'sgd', hyper: { lr: 0.1 }, consistency: Consistency.BSP, staleness: 0 }]);
    console.log(`local cluster: scheduler ${cluster.schedulerUrl}, ${opts.servers} servers; table emb dim ${opts.dim}, ${opts.rows} rows`);
    let pulled = 0, pushed = 0, pullMs = 0, pushMs = 0;
    let x = 12345;
    const rand = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % opts.rows;
    for (let r = 0; r < opts.rounds; r++) {
      const set = new Set<number>();
      while (set.size < opts.keysPerRequest) set.add(rand());
      const keys = BigUint64Array.from([...set], (k) => BigInt(k));
      let t0 = performance.now();
      const rows = await client.pull(1, keys, { clock: client.clockValue });
      pullMs += performance.now() - t0;
      const grads = rows.map((v) => v * 0.5);
      t0 = performance.now();
      await client.push(1, keys, grads);
      pushMs += performance.now() - t0;
      await client.clock();
      pulled += keys.length; pushed += keys.length;
    }
    const stats = (await client.serverStats()) as { tables: { rows: number; bytesPerRow: number; idealBytesPerRow: number }[] }[];
    const rowsStored = stats.reduce((a, s) => a + s.tables[0]!.rows, 0);
    const summary = {
      servers: opts.servers, rounds: opts.rounds, keysPerRequest: opts.keysPerRequest, dim: opts.dim, rowsStored,
      pullRowsPerSec: Math.round(pulled / (pullMs / 1000)), pushRowsPerSec: Math.round(pushed / (pushMs / 1000)),
      bytes: client.bytes,
    };
    console.log(`pulled ${pulled} rows at ${summary.pullRowsPerSec} rows/s, pushed ${pushed} rows at ${summary.pushRowsPerSec} rows/s (BSP, ${opts.rounds} clocks)`);
    console.log(`rows stored across servers: ${rowsStored}; wire bytes: pull ${client.bytes.pull}, push ${client.bytes.push}`);
    if (opts.json) console.log(JSON.stringify(summary));
  } finally {
    await client.close();
    await cluster.stop();
  }
}
