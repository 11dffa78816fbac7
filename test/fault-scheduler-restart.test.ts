// The scheduler restarting is survived: servers and workers re-register on their own, views
// continue from a later epoch, ranks are kept, and training goes on with nothing lost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { PsServer } from '../src/server/ps-server.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { SECRET } from './helpers/secret.ts';
import { table, keysOf } from './helpers/cluster.ts';
import { Consistency } from '../src/wire/codec.ts';

/** A scheduler on the port the last one just freed; another process can hold it for a moment. */
async function restartOn(port: number): Promise<Scheduler> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await Scheduler.start({ secret: SECRET, port, heartbeatIntervalMs: 100 });
    } catch (e) {
      if (attempt >= 50 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('servers and workers re-register after a scheduler restart; state and ranks survive', async () => {
  let sched = await Scheduler.start({ secret: SECRET, heartbeatIntervalMs: 100 });
  const port = Number(new URL(sched.url).port);
  const servers = await Promise.all([0, 1].map((i) => PsServer.start({ secret: SECRET, schedulerUrl: sched.url, nodeId: `server-${i}`, heartbeatIntervalMs: 100 })));
  const workers = await Promise.all([1, 0].map((i) => PSClient.connect({ secret: SECRET, schedulerUrl: sched.url, nodeId: `worker-${i}`, heartbeatIntervalMs: 100 })));
  try {
    await Promise.all(workers.map((w) => w.waitForView((v) => v.servers.length === 2 && v.workers.length === 2)));
    assert.equal(workers.map((w) => w.rank), [1, 0], 'named workers get their index as rank');
    const spec = table({ id: 1, dim: 2, consistency: Consistency.ASP, optimizer: 'sgd', hyper: { lr: -1 } });
    for (const w of workers) await w.declareTables([spec]);
    const keys = keysOf(1, 2, 3, 4, 5);
    await workers[0]!.push(1, keys, new Float32Array(10).fill(1));
    const epochBefore = workers[0]!.view.epoch;

    await sched.stop();
    sched = await restartOn(port);
    // Members come back through their heartbeats (normally within a second; the bound is a hang guard).
    await Promise.all(workers.map((w) => w.waitForView((v) => v.epoch > epochBefore && v.servers.length === 2 && v.workers.length === 2, 60_000)));
    assert.equal(workers.map((w) => w.rank), [1, 0], 'ranks are the same after the restart');
    await workers[1]!.push(1, keys, new Float32Array(10).fill(1));
    const v = await workers[0]!.pull(1, keys);
    assert.ok(v.every((x) => x === 2), `both pushes kept: ${Array.from(v)}`);
  } finally {
    for (const w of workers) await w.close();
    for (const s of servers) await s.stop();
    await sched.stop();
  }
});

test.run();
