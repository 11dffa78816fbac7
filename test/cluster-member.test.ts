// ClusterMember, the membership both servers and workers use: registers and follows the views the
// scheduler publishes, beats with its clock, keeps one link per server (the same one each time,
// closed when that server leaves the view), refuses links to servers not in the view with a
// typed error, waits for a view, and leaves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { PsServer } from '../src/server/ps-server.ts';
import { ClusterMember, NotInViewError } from '../src/cluster/member.ts';
import { ErrorCode, Role } from '../src/wire/codec.ts';
import type { ClusterView } from '../src/cluster/cluster-view.ts';
import { SECRET } from './helpers/secret.ts';

test('join, views, heartbeats with the clock, one link per server, closed when it leaves, leave', async () => {
  const s = await Scheduler.start({ secret: SECRET, heartbeatIntervalMs: 50, heartbeatMisses: 4 });
  const server = await PsServer.start({ secret: SECRET, schedulerUrl: s.url, nodeId: 'server-0' });
  const seen: [number, number][] = [];
  let clock = 3, stopped = false;
  const m = new ClusterMember({
    nodeId: 'w', secret: SECRET, role: Role.Worker, address: '', schedulerUrl: s.url, heartbeatClock: () => clock,
    onView: (v: ClusterView, prev: ClusterView) => seen.push([prev.epoch, v.epoch]),
  });
  try {
    await m.join();
    const v = await m.waitForView((x) => x.servers.length === 1 && x.workers.some((w) => w.nodeId === 'w'), 30_000);
    assert.ok(seen.length >= 1 && seen.every(([a, b]) => a < b), 'each view newer than the one before');
    assert.is(seen.at(-1)![1], v.epoch);
    const link = m.server('server-0');
    assert.is(m.server('server-0'), link, 'one link per server');
    assert.is((await link.request({ type: 'statsRequest' })).body.type, 'statsReply');
    try { m.server('server-9'); assert.unreachable(); } catch (e) {
      assert.instance(e, NotInViewError);
      assert.is((e as NotInViewError).code, ErrorCode.StaleEpoch);
      assert.match((e as Error).message, /server server-9 is not in view \d+/);
    }
    // Beats at the scheduler's pace (50 ms from its welcome; 4 misses is death) and reports its clock.
    clock = 7;
    await new Promise((r) => setTimeout(r, 600));
    // A beat carrying clock 7 has arrived (within 600 ms, unless the machine stalled this process).
    const me = () => (s.status() as { members: { nodeId: string; clock: number }[] }).members.find((x) => x.nodeId === 'w');
    await until(() => me()?.clock === 7);
    assert.is(me()?.clock, 7);
    assert.is(s.stats.deaths, 0);
    await server.stop();
    stopped = true;
    await m.waitForView((x) => x.servers.length === 0, 30_000);
    await until(() => !link.connected);
    // Closed by the member (a dropped link would try to reconnect instead).
    const closed = await link.connection().then(() => null, (e: Error) => e);
    assert.match(String(closed?.message), /link to ws:\/\/\S+ was closed/, 'the departed server\'s link was closed');
    await m.waitForView(() => false, 50).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /timed out waiting for the cluster/));
    await m.leave();
    await until(() => !s.view().members.some((x) => x.nodeId === 'w'));
  } finally {
    await m.leave();
    if (!stopped) await server.stop();
    await s.stop();
  }
});

/** Until `cond` holds; the bound is a hang guard (the conditions normally hold within milliseconds). */
async function until(cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.unreachable('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.run();
