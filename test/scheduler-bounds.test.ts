// The scheduler against a buggy or hostile member: a node id stays with its live member (no
// eviction by a hello that reuses it), and barrier state is bounded (name length, names
// remembered, barriers open per worker), so an authenticated peer cannot grow it without end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { Peer } from '../src/transport/index.ts';
import { Role, type ClusterViewMsg } from '../src/wire/codec.ts';
import { SECRET } from './helpers/secret.ts';

function peer(url: string, nodeId: string, role: Role, address: string, views: ClusterViewMsg[] = []) {
  return new Peer(url, {
    nodeId, secret: SECRET, role, address, connectAttempts: 1,
    onConnect: (_c, w) => { if (w.view) views.push(w.view); },
    onRequest: (env) => { if (env.body.type === 'clusterView') views.push(env.body.view); },
  });
}
// A short pause before checking that nothing happened (a slow machine only makes that likelier).
const settle = () => new Promise((r) => setTimeout(r, 150));
/** Until `cond` holds: for what must happen (the bound is a hang guard, not a deadline). */
async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const status = (s: Scheduler) => s.status() as { epoch: number; members: { nodeId: string; address: string }[]; openBarriers: number; barrierNames: number };

test('a hello reusing a live member\'s node id is refused and evicts nobody', async () => {
  const s = await Scheduler.start({ secret: SECRET });
  const views: ClusterViewMsg[] = [];
  const server = peer(s.url, 'server-0', Role.Server, 'ws://10.0.0.1:1', views);
  await server.connection();
  const epoch = status(s).epoch;
  for (const [role, address] of [[Role.Client, ''], [Role.Worker, 'ws://10.0.0.9:1'], [Role.Server, 'ws://10.0.0.2:1']] as const) {
    const intruder = peer(s.url, 'server-0', role, address);
    const err = await intruder.connection().then(() => null, (e: Error) => e);
    assert.ok(err, `${Role[role]} with a taken node id must be refused`);
    assert.match(err!.message, /node id 'server-0' is already registered by a live Server/);
    assert.match(err!.message, /own --node-id/);
    await intruder.close();
  }
  await settle();
  assert.ok(server.connected, 'the live server keeps its link');
  assert.is(status(s).epoch, epoch, 'no new view: nobody was evicted');
  assert.equal(status(s).members.map((m) => m.nodeId), ['server-0']);
  assert.is(views.at(-1)!.members.length, 1);
  await server.close();
  await s.stop();
});

test('the same member restarting (same role, same address) takes its id and rank back', async () => {
  const s = await Scheduler.start({ secret: SECRET });
  const first = peer(s.url, 'server-3', Role.Server, 'ws://10.0.0.1:7');
  await first.connection();
  const again = peer(s.url, 'server-3', Role.Server, 'ws://10.0.0.1:7');
  await again.connection();
  // The scheduler closes the old link; its end learns it a moment later (longer on a busy machine).
  await until(() => !first.connected, 'the old link to close as replaced');
  assert.ok(again.connected);
  assert.equal(status(s).members.map((m) => m.address), ['ws://10.0.0.1:7']);
  await again.close(); await first.close();
  await s.stop();
});

test('barrier names are bounded: long names refused, released names forgotten past the limit, open barriers per worker capped', async () => {
  const s = await Scheduler.start({ secret: SECRET, maxBarrierNames: 8, maxBarriersPerWorker: 2 });
  const w0 = peer(s.url, 'worker-0', Role.Worker, 'ws://w0');
  await w0.connection();
  // 300 names of 100 KB each were kept forever before (+110 MB): now refused, nothing kept.
  const heap0 = process.memoryUsage().heapUsed;
  for (let i = 0; i < 300; i++) {
    const err = await w0.request({ type: 'barrier', name: `${i}-${'x'.repeat(100_000)}`, worker: 0, generation: 0 }).then(() => null, (e: Error) => e);
    assert.match(err?.message ?? '', /barrier name of \d+ characters: names are 1 to 256 characters/);
  }
  assert.is(status(s).openBarriers, 0);
  assert.is(status(s).barrierNames, 0);
  assert.ok(process.memoryUsage().heapUsed - heap0 < 64 << 20, 'refused names are not kept');
  // With one live worker every barrier releases at once; 50 distinct names leave at most 8 behind,
  // and a name seen again continues its generation.
  for (let i = 0; i < 50; i++) await w0.request({ type: 'barrier', name: `step-${i}`, worker: 0, generation: 0 });
  assert.is(status(s).barrierNames, 8);
  const r = await w0.request({ type: 'barrier', name: 'step-49', worker: 0, generation: 0 });
  assert.is((r.body as { generation: number }).generation, 1);
  // A second worker: worker 0 now waits; it may hold 2 open barriers, not 3.
  const w1 = peer(s.url, 'worker-1', Role.Worker, 'ws://w1');
  await w1.connection();
  await settle();
  const open = [w0.request({ type: 'barrier', name: 'a', worker: 0, generation: 0 }), w0.request({ type: 'barrier', name: 'b', worker: 0, generation: 0 })];
  await settle();
  const third = await w0.request({ type: 'barrier', name: 'c', worker: 0, generation: 0 }).then(() => null, (e: Error) => e);
  assert.match(third?.message ?? '', /already waits in 2 barriers \(the limit\)/);
  assert.is(status(s).openBarriers, 2);
  // Worker 1 arriving releases both.
  await Promise.all([w1.request({ type: 'barrier', name: 'a', worker: 1, generation: 0 }), w1.request({ type: 'barrier', name: 'b', worker: 1, generation: 0 }), ...open]);
  assert.is(status(s).openBarriers, 0);
  await w0.close(); await w1.close();
  await s.stop();
});

test.run();
