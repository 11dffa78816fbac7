// A take-over's sources (src/server/handoff-sources.ts): each key's source is the first member of
// its chain in the basis view (before the taker joined) still live as the same incarnation; the
// ring arcs the taker heads with no such member are lost (both copies gone), and named. Checked
// against the views' own routing on sampled hashes. Also: a server's request sent before its
// current incarnation began (it sat in a cut link) is refused (src/server/authorization.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { ErrorCode, Role, type MemberMsg } from '../src/wire/codec.ts';
import { describeLost, liveHolders, lostArcs, sourceOf } from '../src/server/handoff-sources.ts';
import { authorize } from '../src/server/authorization.ts';
import { RpcError } from '../src/transport/index.ts';

/** A view of servers given as [index, since]. */
const view = (epoch: number, servers: [number, number][]) => new ClusterView({
  epoch, vnodes: 16, replicas: 2,
  members: servers.map(([i, since]): MemberMsg => ({ nodeId: `server-${i}`, role: Role.Server, address: `ws://s${i}`, rank: i, since })),
});

/** xorshift32: the same sampled hashes each run. */
function hashes(n: number): number[] {
  let x = 2463534242;
  return Array.from({ length: n }, () => { x ^= x << 13; x >>>= 0; x ^= x >> 17; x ^= x << 5; x >>>= 0; return x; });
}
const inArcs = (h: number, arcs: [number, number][]) => arcs.some(([lo, hi]) => (lo < hi ? h > lo && h <= hi : h > lo || h <= hi));

/** For sampled hashes: lost (by the arcs) exactly when `to` heads it and no basis chain member is live. */
function checkAgainstRouting(basis: ClusterView, now: ClusterView, to: string): number {
  const lost = lostArcs(basis, now, to);
  const live = liveHolders(basis, now, to);
  let n = 0;
  for (const h of hashes(20_000)) {
    const head = now.servers[now.ring.ownerOfHash(h)]!.nodeId;
    const chain = basis.ring.chainOfHash(h, 2).map((i) => basis.servers[i]!);
    const want = head === to && sourceOf(chain, live) === undefined;
    assert.is(inArcs(h, lost.arcs), want, `hash ${h}: head ${head}, basis chain ${chain.map((m) => m.nodeId)}`);
    if (want) n++;
  }
  assert.ok(Math.abs(lost.fraction - n / 20_000) < 0.02, `fraction ${lost.fraction} vs sampled ${n / 20_000}`);
  return n;
}

test('sources: the first live member of the basis chain, same incarnation; a server registered again is not one', () => {
  const basis = view(4, [[1, 2], [2, 3]]);
  const chain = basis.servers; // with two servers and R = 2, every chain holds both
  assert.equal([...liveHolders(basis, view(6, [[0, 5], [1, 2], [2, 3]]), 'server-0')].sort(), ['server-1', 'server-2']);
  // server-2 declared dead (gone), then back as a new incarnation (since 7): holds nothing of the basis.
  assert.equal([...liveHolders(basis, view(7, [[0, 5], [1, 2]]), 'server-0')], ['server-1']);
  assert.equal([...liveHolders(basis, view(8, [[0, 5], [1, 2], [2, 8]]), 'server-0')], ['server-1']);
  assert.is(sourceOf([chain[1]!, chain[0]!], new Set(['server-1'])), 'server-1', 'the head is gone: its backup hands the key');
  assert.is(sourceOf(chain, new Set()), undefined);
});

test('lost arcs: none while one holder of every basis chain is live; exactly the taker\'s arcs whose holders are all gone', () => {
  // The chaos run's case: server-0 came back (basis: servers 1 and 2); server-2 was cut off mid-way.
  const basis = view(4, [[1, 2], [2, 3]]);
  assert.is(lostArcs(basis, view(7, [[0, 5], [1, 2]]), 'server-0').arcs.length, 0, 'server-1 holds every key');
  assert.is(checkAgainstRouting(basis, view(7, [[0, 5], [1, 2]]), 'server-0'), 0);
  // server-1 registered again too (new since): nobody holds what server-0 heads now.
  const both = view(9, [[0, 5], [1, 9]]);
  const lost = lostArcs(basis, both, 'server-0');
  assert.ok(lost.arcs.length > 0 && lost.fraction > 0.2 && lost.fraction < 0.8, `server-0 heads about half the ring: ${lost.fraction}`);
  assert.ok(checkAgainstRouting(basis, both, 'server-0') > 0);
  assert.equal(lost.heldBy, ['server-1', 'server-2']);
  assert.match(describeLost(lost, basis), /ring arc\(s\) of key hashes, \d+\.\d\d% of the rows of every table \(\(0x[0-9a-f]{8}, 0x[0-9a-f]{8}\].*held in view 4 only by server-1, server-2/);
  // Three servers: only the arcs whose both basis holders are gone.
  const three = view(10, [[0, 1], [1, 1], [2, 1]]);
  const some = view(12, [[0, 1], [1, 12], [2, 11]]); // 1 and 2 back as new incarnations; server-0 lost none of its own
  assert.is(lostArcs(three, some, 'server-1').fraction > 0, true);
  checkAgainstRouting(three, some, 'server-1');
  checkAgainstRouting(three, view(11, [[0, 1], [1, 11]]), 'server-1');
  assert.is(lostArcs(view(0, []), both, 'server-0').arcs.length, 0, 'a fresh cluster held nothing');
});

test('a server\'s request sent before its current incarnation began is refused (Fenced); one sent since is let through', () => {
  const v = view(9, [[0, 1], [2, 8]]);
  const from = { id: 'server-2', role: Role.Server };
  const body = { type: 'handoffMetaRequest' } as const;
  const e = (() => { try { authorize(body, from, v, 7); return null; } catch (err) { return err as RpcError; } })();
  assert.instance(e, RpcError);
  assert.is(e!.code, ErrorCode.Fenced);
  assert.match(e!.message, /sent under view 7, before it registered again in view 8/);
  authorize(body, from, v, 8);
  authorize(body, from, v, 9);
  authorize(body, { id: 'server-0', role: Role.Server }, v, 2);
});

test.run();
