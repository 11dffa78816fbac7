// Chain replication (R = 2) with real server processes: `kill -9` of one server in the middle of
// a BSP run changes nothing; the final parameters equal a run without the failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalCluster } from '../src/launch/local-cluster.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { Consistency, type TableSpecMsg } from '../src/wire/codec.ts';

const SPEC: TableSpecMsg = {
  id: 5, name: 'emb', dim: 8, init: 'uniform', initScale: 0.5, seed: 99n, optimizer: 'adagrad',
  hyper: { lr: 0.1, initial_accumulator: 0.1 }, consistency: Consistency.BSP, staleness: 0,
};
const KEYS = 300, STEPS = 10;

/** Worker w's keys at a step: overlapping windows, so workers share rows. */
function stepKeys(w: number, step: number): BigUint64Array {
  const start = (step * 37 + w * 101) % KEYS;
  return BigUint64Array.from({ length: 120 }, (_, i) => BigInt(((start + i) % KEYS) * 1009));
}

/**
 * Until every live server has the view without `id` and has finished copying rows (and unapplied
 * sums) to its new replicas: R = 2 copies exist again, so the next failure can be survived. (A
 * fixed pause here was not enough on a busy machine; with none the second kill loses updates.)
 */
async function reReplicated(w: PSClient, id: string): Promise<void> {
  const view = await w.waitForView((v) => !v.servers.some((m) => m.nodeId === id));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const stats = (await w.serverStats()) as { nodeId: string; epoch: number; copiesInFlight: number }[];
    if (stats.every((s) => s.epoch >= view.epoch && s.copiesInFlight === 0)) return;
    if (Date.now() > deadline) throw new Error(`re-replication after ${id} died not finished in 60 s: ${JSON.stringify(stats)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `kill`: at that step, after the pushes and before the clock, kill these servers one by one,
 * waiting for the view without each and its re-replication before the next.
 */
async function run(kill: { step: number; servers: string[] } | null, servers = 3): Promise<Float32Array> {
  // Default heartbeats (1 s, 5 missed): a kill is seen at once through the closed link, and a
  // server process that a busy machine leaves without CPU for half a second is not declared dead.
  const cluster = new LocalCluster({ servers, replicas: 2, log: () => {} });
  await cluster.start();
  const secret = new TextEncoder().encode(cluster.secret);
  const workers = await Promise.all([0, 1].map((i) => PSClient.connect({ secret, schedulerUrl: cluster.schedulerUrl, nodeId: `w${i}`, requestTimeoutMs: 5000, retries: 8 })));
  try {
    await Promise.all(workers.map((w) => w.waitForView((v) => v.servers.length === servers && v.workers.length === 2 && w.rank >= 0)));
    for (const w of workers) await w.declareTables([SPEC]);
    for (let step = 0; step < STEPS; step++) {
      await Promise.all(workers.map(async (w, i) => {
        const keys = stepKeys(i, step);
        const rows = await w.pull(5, keys, { clock: step });
        const grads = rows.map((v, j) => 0.3 * v + Math.sin(j + step * 7 + i * 3) * 0.1);
        await w.push(5, keys, grads, { clock: step });
        if (kill?.step === step && i === 0) {
          for (const [n, id] of kill.servers.entries()) {
            cluster.children.find((c) => c.nodeId === id)!.proc.kill('SIGKILL');
            if (n + 1 < kill.servers.length) await reReplicated(w, id);
          }
        }
        await w.clock();
      }));
    }
    const all = BigUint64Array.from({ length: KEYS }, (_, k) => BigInt(k * 1009));
    return await workers[0]!.pull(5, all, { clock: STEPS });
  } finally {
    for (const w of workers) await w.close().catch(() => {});
    await cluster.stop();
  }
}

test('R=2: kill -9 of a server mid-run leaves the final parameters unchanged', async () => {
  const clean = await run(null);
  const failed = await run({ step: 4, servers: ['server-1'] });
  let maxDiff = 0;
  for (let i = 0; i < clean.length; i++) maxDiff = Math.max(maxDiff, Math.abs(clean[i]! - failed[i]!));
  assert.is(maxDiff, 0, `max |difference| ${maxDiff}`);
});

test('R=2: two servers killed one after the other inside one BSP clock: still unchanged', async () => {
  // The second death hits rows whose only other copy was re-replicated moments before, with
  // that clock's summed gradients not yet applied: they must have been copied along.
  const clean = await run(null, 4);
  const failed = await run({ step: 4, servers: ['server-1', 'server-2'] }, 4);
  let maxDiff = 0;
  for (let i = 0; i < clean.length; i++) maxDiff = Math.max(maxDiff, Math.abs(clean[i]! - failed[i]!));
  assert.is(maxDiff, 0, `max |difference| ${maxDiff}`);
});

test.run();
