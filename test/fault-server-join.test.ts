// A server joining a running cluster takes over the rows it now heads (copied from their previous
// holders, then served) without losing or double-applying an update: workers keep pushing +1
// with SGD lr = -1 while the server joins, and every row ends at exactly the count pushed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PsServer } from '../src/server/ps-server.ts';
import { Consistency } from '../src/wire/codec.ts';
import { startCluster, allJoined, table, SECRET } from './helpers/cluster.ts';
import type { PSClient } from '../src/client/ps-client.ts';

const DIM = 4, KEYS = 600;
const keys = BigUint64Array.from({ length: KEYS }, (_, i) => BigInt(i * 7919 + 3));
const ones = new Float32Array(KEYS * DIM).fill(1);

async function checkCounts(c: PSClient, tableId: number, want: number): Promise<void> {
  const rows = await c.pull(tableId, keys);
  for (let i = 0; i < rows.length; i++) if (rows[i] !== want) assert.unreachable(`row ${keys[Math.floor(i / DIM)]} holds ${rows[i]}, expected ${want}`);
}

for (const consistency of [Consistency.ASP, Consistency.BSP]) {
  const name = Consistency[consistency];
  test(`${name}: a third server joins mid-run; every acknowledged +1 is counted exactly once`, async () => {
    const cluster = await startCluster({ servers: 2 });
    let joined: PsServer | null = null;
    try {
      const workers = [await cluster.client('worker-0'), await cluster.client('worker-1')];
      await allJoined(workers, 2);
      for (const w of workers) await w.declareTables([table({ id: 5, dim: DIM, consistency, optimizer: 'sgd', hyper: { lr: -1 } })]);
      const ROUNDS = 24, JOIN_AT = 8;
      const joinedPromise = new Promise<void>((resolve) => {
        const run = async (w: PSClient, i: number) => {
          for (let r = 0; r < ROUNDS; r++) {
            if (consistency === Consistency.BSP) await w.pull(5, keys, { clock: w.clockValue });
            await w.push(5, keys, ones, consistency === Consistency.BSP ? { clock: w.clockValue } : {});
            // Join between a push and its clock: under BSP the old servers then hold sums of a
            // clock not yet applied, which the new server must take over too.
            if (i === 0 && r === JOIN_AT) {
              const s = await PsServer.start({ secret: SECRET, schedulerUrl: cluster.scheduler.url, nodeId: 'server-2' });
              joined = s;
              await s.whenServing(); // the handoff ran while this clock's sums were still pending
              resolve();
            }
            await w.clock();
          }
        };
        void Promise.all(workers.map(run)).then(() => undefined);
      });
      await joinedPromise;
      // Wait for both loops to finish: the last clock of each worker.
      await Promise.all(workers.map((w) => w.waitForView((v) => v.servers.length === 3)));
      const deadline = Date.now() + 120_000; // a hang guard: the loops normally end within seconds
      while (workers.some((w) => w.clockValue < ROUNDS) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(workers.every((w) => w.clockValue === ROUNDS), 'both workers finished');
      // BSP applies clock c when both workers have clocked it; a pull at clock ROUNDS sees them all.
      const reader = workers[0]!;
      if (consistency === Consistency.BSP) await reader.pull(5, keys, { clock: ROUNDS });
      await checkCounts(reader, 5, 2 * ROUNDS);
      const stats = (await reader.serverStats()) as { nodeId: string; tables: { rows: number }[] }[];
      const mine = stats.find((s) => s.nodeId === 'server-2');
      assert.ok(mine && mine.tables[0]!.rows > 50, `the new server holds its share (${mine?.tables[0]?.rows} rows)`);
    } finally {
      if (joined) await (joined as PsServer).stop();
      await cluster.close();
    }
  });
}

test.run();
