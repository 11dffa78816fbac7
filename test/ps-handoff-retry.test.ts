// The joining side of a take-over (src/server/handoff.ts) against scripted holders: a source whose
// link closes mid-way (it was declared dead) makes the whole take-over run again under the next
// view, with `retry` set and the first attempt's rows dropped, and pulls wait until it is done;
// a holder's DataLost, with no newer view, ends it for good: every data request then fails with
// that error (the run stops saying what was lost). The netns test of the same path is
// test/fault-partition-server.test.ts ("a take-over whose source is cut off mid-way").
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { ErrorCode, Role, type Body, type BodyOf } from '../src/wire/codec.ts';
import { Handoff } from '../src/server/handoff.ts';
import { Replication } from '../src/server/replication.ts';
import { Tables } from '../src/server/tables.ts';
import { ConsistencyGate } from '../src/server/consistency.ts';
import { PushDeduper } from '../src/server/push-deduper.ts';
import { newServerStats } from '../src/server/server-stats.ts';
import { createLogger } from '../src/util/log.ts';
import { RemoteError, ConnectionClosedError, RpcError } from '../src/transport/index.ts';
import type { ServerContext } from '../src/server/server-context.ts';
import type { ClusterMember } from '../src/cluster/member.ts';
import { table, settledWithin } from './helpers/cluster.ts';

const DIM = 2;
const SPEC = table({ id: 1, dim: DIM });
const view = (epoch: number, servers: number[], since: Record<number, number> = {}) => new ClusterView({
  epoch, vnodes: 8, replicas: 2, members: servers.map((i) => ({ nodeId: `server-${i}`, role: Role.Server, address: `ws://s${i}`, rank: i, since: since[i] ?? 1 })),
});

/**
 * A holder's scripted answers: a meta with one table of `keys` (and, for key 5, the BSP sum 1 of
 * clock 0, which worker 0 has finished), then that page of rows at `value`.
 */
function holder(keys: bigint[], value: number) {
  return (body: Body): Body => {
    if (body.type === 'handoffMetaRequest') {
      const pending = keys.includes(5n) ? [{ table: 1, clock: 0, keys: BigUint64Array.of(5n), sums: new Float64Array(DIM).fill(1), applied: [] }] : [];
      return { type: 'handoffMeta', tables: [{ spec: SPEC, rows: keys.length, applied: [], pending }], clocks: [{ rank: 0, clock: 1 }], wholePushes: [] };
    }
    if (body.type === 'handoffRequest') {
      return { type: 'copyRows', table: 1, keys: BigUint64Array.from(keys), values: new Float32Array(keys.length * DIM).fill(value), slots: new Float32Array(0), slotCount: 0, steps: new Uint32Array(keys.length) };
    }
    throw new Error(`unexpected ${body.type}`);
  };
}

/** A Handoff for server-0 whose peers answer through `answer` (or hang until `cut` is called). */
function taker(answer: (server: string, body: Body) => Promise<Body>) {
  const sent: { to: string; body: Body }[] = [];
  const member = {
    nodeId: 'server-0', view: ClusterView.empty(),
    server: (id: string) => ({ request: async (body: Body) => { sent.push({ to: id, body }); return { body: await answer(id, body) }; } }),
  };
  const log = createLogger('server-0');
  const tables = new Tables(log);
  const ctx = { member: member as unknown as ClusterMember, tables, gate: new ConsistencyGate(tables, newServerStats()), dedup: new PushDeduper(), stats: newServerStats(), log } as ServerContext;
  ctx.gate.setLiveWorkers([0]);
  // The copies put off until the take-over is done go out through a real Replication (Handoff.finish).
  const replication = new Replication(ctx);
  const handoff = new Handoff(ctx, (old, skip) => replication.rereplicate(old, skip));
  const show = (v: ClusterView, prev: ClusterView, joined: boolean) => { member.view = v; handoff.onView(v, prev, joined); };
  return { handoff, tables, sent, show };
}

test('a source whose link closes mid-way: the take-over drops what it took and runs again under the next view (retry), then serves', async () => {
  let cut!: (e: Error) => void;
  let retried = false;
  const t = taker(async (id, body) => {
    if (id === 'server-2') return await new Promise<Body>((_, reject) => { cut = reject; }); // cut off: no answer
    if (body.type === 'handoffMetaRequest') retried ||= !!body.retry;
    return holder(retried ? [5n, 6n, 7n] : [5n], 1)(body);
  });
  const basis = view(3, [1, 2]), joined = view(4, [0, 1, 2], { 0: 4 });
  t.show(basis, ClusterView.empty(), false);
  t.show(joined, basis, true);
  const serving = t.handoff.inProgress!;
  assert.ok(serving, 'taking over');
  await new Promise((r) => setTimeout(r, 50));
  assert.is(t.tables.get(1).store.rows, 1, 'server-1\'s rows are in');
  assert.is(await settledWithin(serving, 200), 'pending', 'but it does not serve while server-2\'s part is missing');
  // server-2 is declared dead: its link closes under the request, and the next view arrives.
  cut(new ConnectionClosedError('server-2 left the view'));
  t.show(view(5, [0, 1], { 0: 4 }), joined, false);
  await serving;
  assert.equal(t.sent.filter((s) => s.body.type === 'handoffMetaRequest').map((s) => [s.to, (s.body as BodyOf<'handoffMetaRequest'>).retry]),
    [['server-1', false], ['server-2', false], ['server-1', true]]);
  assert.is(t.sent.filter((s) => s.body.type === 'copyRows').length, 0, 'with R = 2 of 2 servers left there is no new replica to copy to');
  assert.is(t.tables.get(1).store.rows, 3, 'the second attempt\'s rows (server-1 now hands server-2\'s ranges too)');
  // The first attempt's BSP sum was dropped with its rows: applied once (SGD lr 0.1: 1 - 0.1 x 1), not twice (0.8).
  const row = t.tables.get(1).store.pull(BigUint64Array.of(5n));
  assert.ok(Math.abs(row[0]! - 0.9) < 1e-6, `key 5 after the take-over: ${row[0]}`);
  assert.is(t.handoff.inProgress, null, 'serving');
});

test('after a retried take-over, rows go to the chain members new since the joining view, never back to the server they came from', async () => {
  // Four servers: server-0 joins (view 4), its take-over hangs on server-2, which is declared
  // dead (view 5); the retry takes its rows from server-1 and server-3. Every key server-0 heads
  // in view 5 whose backup is new since view 4 (server-1 where it was server-2) is copied there,
  // unless it came from server-1 itself.
  const basis = view(3, [1, 2, 3]), joined = view(4, [0, 1, 2, 3], { 0: 4 }), after = view(5, [0, 1, 3], { 0: 4 });
  const chainIs = (v: ClusterView, k: number, ids: string) => v.chainOf(1, k, 0).map((m) => m.nodeId.slice(-1)).join('') === ids;
  const keysWith = (before: string, now: string) => [...Array(400).keys()].filter((k) => chainIs(joined, k, before) && chainIs(after, k, now)).slice(0, 3).map(BigInt);
  const fromServer3 = keysWith('02', '01'); // backup server-2 -> server-1: a copy is due
  const fromServer1 = keysWith('20', '01'); // the same new backup, but it is where they came from
  assert.ok(fromServer3.length > 0 && fromServer1.length > 0, 'the ring has both kinds of key');
  let cut!: (e: Error) => void;
  let retried = false;
  const t = taker(async (id, body) => {
    if (id === 'server-2' && !retried) return await new Promise<Body>((_, reject) => { cut = reject; });
    if (body.type === 'handoffMetaRequest') retried ||= !!body.retry;
    if (body.type === 'copyRows') return { type: 'ok' };
    return holder(!retried ? [] : id === 'server-1' ? fromServer1 : fromServer3, 1)(body);
  });
  t.show(basis, ClusterView.empty(), false);
  t.show(joined, basis, true);
  const serving = t.handoff.inProgress!;
  await new Promise((r) => setTimeout(r, 50));
  cut(new ConnectionClosedError('server-2 left the view'));
  t.show(after, joined, false);
  await serving;
  const copies = t.sent.filter((s) => s.body.type === 'copyRows');
  assert.equal(copies.map((c) => c.to), ['server-1'], 'one copy, to server-1');
  assert.equal([...(copies[0]!.body as BodyOf<'copyRows'>).keys].sort(), [...fromServer3].sort(), 'of server-3\'s keys only: none of server-1\'s back to it');
});

test('a holder answering DataLost, and no newer view: the take-over stops for good, and every request is refused with DataLost', async () => {
  const lost = 'rows are lost: 3 ring arc(s) of key hashes, 12.50% of the rows of every table (...), held in view 3 only by server-1, server-2';
  const t = taker(async (id, body) => {
    if (id === 'server-1') throw new RemoteError(ErrorCode.DataLost, lost, id);
    return holder([9n], 2)(body);
  });
  const basis = view(3, [1, 2]);
  t.show(basis, ClusterView.empty(), false);
  t.show(view(4, [0, 1, 2], { 0: 4 }), basis, true);
  const serving = t.handoff.inProgress!;
  assert.is(await settledWithin(serving, 2_000), 'pending', 'it waits a while for a newer view first');
  const e = await serving.then(() => null, (x: unknown) => x);
  assert.instance(e, RpcError);
  assert.is((e as RpcError).code, ErrorCode.DataLost);
  assert.match((e as Error).message, /server-0 refuses its rows: server-1: DataLost: rows are lost: 3 ring arc\(s\).*server-1, server-2/);
  const later = await t.handoff.inProgress!.then(() => null, (x: unknown) => x);
  assert.is(later, e, 'and the same error for every request after');
});

test.run();
