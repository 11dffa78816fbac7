// Membership: registration with stable ranks, a new view on every change, death by closed link
// and by missed heartbeats, barriers over live workers, TF_CONFIG mapping.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { Peer } from '../src/transport/index.ts';
import { Role, type ClusterViewMsg } from '../src/wire/codec.ts';
import { SECRET } from './helpers/secret.ts';
import { parseTfConfig, clusterEnvFromProcess } from '../src/launch/cluster-env.ts';
import { HashRing } from '../src/cluster/hash-ring.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { PsServer } from '../src/server/ps-server.ts';

function member(url: string, nodeId: string, role: Role, views: ClusterViewMsg[]) {
  return new Peer(url, {
    nodeId, secret: SECRET, role, address: `ws://${nodeId}`,
    onConnect: (_c, w) => { if (w.view) views.push(w.view); },
    onRequest: (env) => { if (env.body.type === 'clusterView') views.push(env.body.view); },
  });
}
// A hang guard, not a deadline: the conditions normally hold within milliseconds.
const until = async (cond: () => boolean, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) throw new Error('condition not met in time'); await new Promise((r) => setTimeout(r, 10)); }
};

// Every test closes what it opened in a finally: a failed assertion must not leave links and
// timers that keep the process (and so the whole file) alive until the runner's timeout.

test('ranks, epochs and a new view on every join and leave', async () => {
  const s = await Scheduler.start({ secret: SECRET });
  const views: ClusterViewMsg[] = [];
  const a = member(s.url, 'server-a', Role.Server, views);
  const b = member(s.url, 'server-b', Role.Server, []);
  const w = member(s.url, 'worker-x', Role.Worker, []);
  let c: Peer | undefined;
  try {
    await a.connection(); await b.connection(); await w.connection();
    await until(() => views.at(-1)?.members.length === 3);
    const v = views.at(-1)!;
    assert.is(v.epoch, 3);
    const ranks = Object.fromEntries(v.members.map((m) => [m.nodeId, m.rank]));
    assert.equal(ranks, { 'server-a': 0, 'server-b': 1, 'worker-x': 0 });
    await b.close();
    await until(() => views.at(-1)?.epoch === 4);
    assert.equal(views.at(-1)!.members.map((m) => m.nodeId).sort(), ['server-a', 'worker-x']);
    // A new server takes the lowest free rank.
    c = member(s.url, 'server-c', Role.Server, []);
    await c.connection();
    await until(() => views.at(-1)?.epoch === 5);
    assert.is(views.at(-1)!.members.find((m) => m.nodeId === 'server-c')!.rank, 1);
  } finally {
    for (const p of [a, b, c, w]) await p?.close().catch(() => {});
    await s.stop();
  }
});

test('a member that stops heartbeating is declared dead', async () => {
  const s = await Scheduler.start({ secret: SECRET, heartbeatIntervalMs: 50, heartbeatMisses: 3 });
  const views: ClusterViewMsg[] = [];
  const watcher = member(s.url, 'server-w', Role.Server, views);
  const silent = member(s.url, 'worker-silent', Role.Worker, []);
  await watcher.connection(); await silent.connection();
  const beat = setInterval(() => watcher.notify({ type: 'heartbeat', nodeId: 'server-w', clock: -1 }).catch(() => {}), 25);
  try {
    await until(() => views.at(-1)?.members.length === 2);
    await until(() => views.at(-1)?.members.length === 1);
    assert.equal(views.at(-1)!.members.map((m) => m.nodeId), ['server-w']);
    assert.is(s.stats.deaths, 1);
  } finally {
    clearInterval(beat);
    await watcher.close(); await silent.close(); await s.stop();
  }
});

test('a scheduler that did not run for a while (GC, a busy machine) does not blame its members', async () => {
  // Scheduler and members share this process: block it for 10 heartbeat limits. Their beats sent
  // meanwhile are unread when the late check runs; it must not count that time against them.
  const s = await Scheduler.start({ secret: SECRET, heartbeatIntervalMs: 50, heartbeatMisses: 3 });
  const client = await PSClient.connect({ secret: SECRET, schedulerUrl: s.url, nodeId: 'w' });
  const server = await PsServer.start({ secret: SECRET, schedulerUrl: s.url, nodeId: 'srv' });
  try {
    await until(() => s.view().members.length === 2);
    for (let i = 0; i < 3; i++) {
      const end = Date.now() + 1500;
      while (Date.now() < end) { /* this process does not run anything else */ }
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(s.view().members.map((m) => m.nodeId).sort(), ['srv', 'w']);
    assert.is(s.stats.deaths, 0);
  } finally {
    await client.close();
    await server.stop();
    await s.stop();
  }
});

test('members beat at the scheduler\'s pace (told in the welcome): a fast scheduler does not drop default members', async () => {
  // 100 ms x 5 misses: a member beating at the 1 s default would be declared dead within a second.
  const s = await Scheduler.start({ secret: SECRET, heartbeatIntervalMs: 100, heartbeatMisses: 5 });
  const client = await PSClient.connect({ secret: SECRET, schedulerUrl: s.url, nodeId: 'w' });
  const server = await PsServer.start({ secret: SECRET, schedulerUrl: s.url, nodeId: 'srv' });
  try {
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(s.view().members.map((m) => m.nodeId).sort(), ['srv', 'w']);
    assert.is(s.stats.deaths, 0);
  } finally {
    await client.close();
    await server.stop();
    await s.stop();
  }
});

test('a barrier releases when every live worker arrived, and adapts when one dies', async () => {
  const s = await Scheduler.start({ secret: SECRET });
  const ws = ['w0', 'w1', 'w2'].map((id) => member(s.url, id, Role.Worker, []));
  for (const w of ws) await w.connection();
  try {
    let released = 0;
    const waits = ws.slice(0, 2).map((w, i) => w.request({ type: 'barrier', name: 'b', worker: i, generation: 0 }).then(() => { released++; }));
    await new Promise((r) => setTimeout(r, 200));
    assert.is(released, 0, 'w2 has not arrived');
    await ws[2]!.close(); // w2 dies: the barrier counts only live workers
    await Promise.all(waits);
    assert.is(released, 2);
  } finally {
    for (const w of ws) await w.close().catch(() => {});
    await s.stop();
  }
});

test('TF_CONFIG maps chief/ps/worker onto scheduler/server/worker', () => {
  const cfg = JSON.stringify({ cluster: { chief: ['sched:2222'], ps: ['ps0:2223', 'ps1:2224'], worker: ['w0:1', 'w1:2', 'w2:3'] }, task: { type: 'ps', index: 1 } });
  assert.equal(parseTfConfig(cfg), { schedulerUrl: 'ws://sched:2222', servers: 2, workers: 3, role: 'server', index: 1, listenHost: 'ps1', listenPort: 2224 });
  const env = clusterEnvFromProcess({ TF_CONFIG: cfg, HYBRIDPS_ROLE: 'worker', HYBRIDPS_SCHEDULER: 'other:9' });
  assert.is(env.role, 'worker');
  assert.is(env.schedulerUrl, 'ws://other:9');
  assert.throws(() => parseTfConfig('{"cluster":{}}'), /chief/);
  assert.throws(() => parseTfConfig('{"cluster":{"chief":["a:1"]},"task":{"type":"boss"}}'), /task.type/);
  assert.throws(() => parseTfConfig('not json'), /not valid JSON/);
});

test('hash ring: balanced, and adding a server moves about 1/S of the keys', () => {
  const ids = ['s0', 's1', 's2', 's3'];
  const r4 = new HashRing(ids, 128), r5 = new HashRing([...ids, 's4'], 128);
  const keys = BigUint64Array.from({ length: 50_000 }, (_, i) => BigInt(i * 2654435761 % 2 ** 40));
  const p4 = r4.partition(1, keys), p5 = r5.partition(1, keys);
  for (const p of p4) assert.ok(Math.abs(p.length / keys.length - 0.25) < 0.06, `share ${p.length / keys.length}`);
  const owner4 = new Int32Array(keys.length), owner5 = new Int32Array(keys.length);
  p4.forEach((p, s) => p.forEach((i) => { owner4[i] = s; }));
  p5.forEach((p, s) => p.forEach((i) => { owner5[i] = s; }));
  let moved = 0;
  for (let i = 0; i < keys.length; i++) if (owner4[i] !== owner5[i]) { moved++; assert.is(owner5[i], 4, 'keys only move to the new server'); }
  assert.ok(Math.abs(moved / keys.length - 0.2) < 0.06, `moved ${moved / keys.length}`);
});

test.run();
