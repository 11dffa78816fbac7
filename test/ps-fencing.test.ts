// Fencing by view epoch (src/server/fencing.ts, docs/operations.md "Fencing"): a member's
// incarnation (`since`) as the scheduler gives it, and a server's reading of the views it sees:
// declared dead -> fenced (data requests refused with Fenced), registered again -> a new
// incarnation (start over), writes begun under an ended incarnation not acknowledged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { Peer, RpcError } from '../src/transport/index.ts';
import { ErrorCode, Role, type ClusterViewMsg, type MemberMsg } from '../src/wire/codec.ts';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { Fence } from '../src/server/fencing.ts';
import { SECRET } from './helpers/secret.ts';

const until = async (cond: () => boolean, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) throw new Error('condition not met in time'); await new Promise((r) => setTimeout(r, 10)); }
};
const view = (epoch: number, members: Partial<MemberMsg>[]) => new ClusterView({
  epoch, vnodes: 8, replicas: 2, members: members.map((m, i) => ({ nodeId: `server-${i}`, role: Role.Server, address: '', rank: i, ...m })),
});
const code = (fn: () => void): ErrorCode | null => { try { fn(); return null; } catch (e) { return (e as RpcError).code; } };

test('the scheduler keeps a member\'s since across reconnects and a scheduler restart, and gives a new one after it declared it dead', async () => {
  let s = await Scheduler.start({ secret: SECRET });
  const port = Number(new URL(s.url).port);
  const views: ClusterViewMsg[] = [];
  let since: number | undefined, epoch = 0;
  // As a ClusterMember does: the hello carries the last view's epoch and this member's since.
  const seen = (v: ClusterViewMsg) => { views.push(v); epoch = Math.max(epoch, v.epoch); };
  const peer = () => new Peer(s.url, {
    nodeId: 'server-0', secret: SECRET, role: Role.Server, address: 'ws://server-0', since: () => since, epoch: () => epoch,
    onConnect: (_c, w) => { if (w.view) seen(w.view); },
    onRequest: (env) => { if (env.body.type === 'clusterView') seen(env.body.view); },
  });
  const sinceIn = (v?: ClusterViewMsg) => v?.members.find((m) => m.nodeId === 'server-0')?.since;
  let a = peer(), other: Peer | undefined;
  try {
    await a.connection();
    const first = sinceIn(views.at(-1));
    assert.ok(first && first > 0, `a fresh registration gets a since: ${first}`);
    since = first;
    // Declared dead (here: its link closed), then registered again: a new incarnation.
    await a.close();
    a = peer();
    await a.connection();
    const second = sinceIn(views.at(-1));
    assert.ok(second! > first!, `registered again after the scheduler dropped it: since ${first} -> ${second}`);
    since = second;
    // A restarted scheduler (no memory of anyone) keeps the incarnation the hello names.
    other = new Peer(s.url, { nodeId: 'server-1', secret: SECRET, role: Role.Server, address: 'ws://server-1' });
    await other.connection();
    await s.stop();
    s = await Scheduler.start({ secret: SECRET, port });
    views.length = 0;
    // Its next heartbeat finds the link closed, reconnects and registers anew.
    for (const t0 = Date.now(); sinceIn(views.at(-1)) === undefined; await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() - t0 > 30_000) throw new Error('the member never registered with the restarted scheduler');
      await a.notify({ type: 'heartbeat', nodeId: 'server-0', clock: -1 }).catch(() => {});
    }
    assert.is(sinceIn(views.at(-1)), second, 'the same incarnation after a scheduler restart');
  } finally {
    await a.close().catch(() => {});
    await other?.close().catch(() => {});
    await s.stop();
  }
});

test('a server reads its views: declared dead is fenced, registered again is a new incarnation', () => {
  const f = new Fence('server-1');
  assert.is(f.onView(view(3, [{ since: 2 }, { since: 3 }])), 'joined', 'its first view');
  assert.is(f.incarnation, 1);
  assert.is(f.onView(view(4, [{ since: 2 }, { since: 3 }, { since: 4 }])), 'member', 'a view where others changed');
  assert.is(code(() => f.admit('push', 4, view(4, []))), null, 'a member admits data requests');
  assert.is(code(() => f.admit('push', 2, view(4, []))), ErrorCode.Fenced, 'but not one sent under a view before its incarnation');
  // A view without it: fenced; every data request refused with Fenced, naming the view.
  assert.is(f.onView(view(5, [{ since: 2 }])), 'declaredDead');
  assert.ok(f.fenced);
  for (const kind of ['push', 'pull', 'replicaPush', 'copyRows', 'clock', 'handoffMetaRequest'] as const) {
    assert.is(code(() => f.admit(kind, 5, view(5, []))), ErrorCode.Fenced, `${kind} refused while fenced`);
  }
  assert.is(code(() => f.admit('statsRequest', 5, view(5, []))), null, 'status still answered');
  // Listed again: a new incarnation, and a write begun under the old one is not acknowledged.
  assert.is(f.onView(view(7, [{ since: 2 }, { since: 7 }])), 'joined');
  assert.not.ok(f.fenced);
  assert.is(code(() => f.admit('push', 4, view(7, []))), ErrorCode.Fenced, 'a push held in a cut link since view 4 arrives after the restart in place');
  assert.is(code(() => f.admit('push', 7, view(7, []))), null);
  assert.is(code(() => f.acknowledge('push', 1, view(7, []))), ErrorCode.Fenced, 'a push begun before the restart in place');
  assert.is(code(() => f.acknowledge('push', 2, view(7, []))), null);
  assert.is(code(() => f.acknowledge('pull', 1, view(7, []))), null, 'reads are not writes');
  // Registered again without ever seeing the view that dropped it: its since changed.
  assert.is(f.onView(view(9, [{ since: 2 }, { since: 9 }])), 'joined');
  assert.is(f.incarnation, 3);
  // A scheduler that sends no since: only the first view starts an incarnation.
  const g = new Fence('server-0');
  assert.is(g.onView(view(1, [{}])), 'joined');
  assert.is(g.onView(view(2, [{}, {}])), 'member');
});

test.run();
