// BSP sums that travel with copied rows (src/server/replication.ts rereplicate and copyPendingIn,
// handoff.ts) reach the new replica and are applied there exactly once, whatever order the clocks
// arrive in. Three faults, all found by the take-over-source-cut scenario of
// test/fault-partition-server.test.ts (2026-12-02, max |diff| 0.16-0.25 in about 1 run of 3):
//   - a head copying its rows to a new replica left out the sums of keys that had no row yet
//     (first pushed in the clock still open), so the replica's copy missed that update;
//   - a new replica that had applied clock c already (the workers' Clock reached it before the
//     head's) dropped the head's unapplied sums of c that came with the copied rows, so its copy
//     missed c's update; a later take-over from that replica served the stale row;
//   - a clock completing in the middle of a take-over applied the sums taken so far and moved
//     the table's applied clock past the sums a later source still had to hand over (dropped).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterView } from '../src/cluster/cluster-view.ts';
import { Role, type Body } from '../src/wire/codec.ts';
import { Handoff } from '../src/server/handoff.ts';
import { Replication } from '../src/server/replication.ts';
import { Tables } from '../src/server/tables.ts';
import { ConsistencyGate } from '../src/server/consistency.ts';
import { PushDeduper } from '../src/server/push-deduper.ts';
import { newServerStats } from '../src/server/server-stats.ts';
import { createLogger } from '../src/util/log.ts';
import type { ServerContext } from '../src/server/server-context.ts';
import type { ClusterMember } from '../src/cluster/member.ts';
import { table, keysOf, settledWithin } from './helpers/cluster.ts';

const DIM = 2;
const SPEC = table({ id: 1, dim: DIM }); // SGD, lr 0.1, zeros
const view = (epoch: number, servers: number[], since: Record<number, number> = {}) => new ClusterView({
  epoch, vnodes: 8, replicas: 2, members: servers.map((i) => ({ nodeId: `server-${i}`, role: Role.Server, address: `ws://s${i}`, rank: i, since: since[i] ?? 1 })),
});

/** A server's context; its peers answer through `answer`. Worker 0 is the only live worker. */
function server(nodeId: string, answer: (server: string, body: Body) => Promise<Body> = async () => { throw new Error('no peer'); }) {
  const member = {
    nodeId, view: ClusterView.empty(),
    server: (id: string) => ({ request: async (body: Body) => ({ body: await answer(id, body) }) }),
  };
  const log = createLogger(nodeId);
  const tables = new Tables(log);
  const ctx = { member: member as unknown as ClusterMember, tables, gate: new ConsistencyGate(tables, newServerStats()), dedup: new PushDeduper(), stats: newServerStats(), log } as ServerContext;
  ctx.gate.setLiveWorkers([0]);
  return { ctx, member };
}

const rowOf = (ctx: ServerContext, key: bigint) => Array.from(ctx.tables.get(1).store.pull(BigUint64Array.of(key)));
const near = (a: number[], b: number[]) => a.every((x, i) => Math.abs(x - b[i]!) < 1e-6);
const copyRows = (keys: bigint[], value: number): Body => ({
  type: 'copyRows', table: 1, keys: BigUint64Array.from(keys), values: new Float32Array(keys.length * DIM).fill(value),
  slots: new Float32Array(0), slotCount: 0, steps: new Uint32Array(keys.length),
});

test('a head copying its rows to a new replica sends the open clock\'s sums of keys with no row yet, and the replica ends equal to the head', () => {
  const old = view(4, [0, 1]), now = view(5, [0, 2]); // server-1 failed; server-2 is new in every chain
  const sent: Body[] = [];
  const head = server('server-0', async (id, body) => { if (id === 'server-2') sent.push(body); return { type: 'ok' }; });
  head.member.view = now;
  head.ctx.tables.declare([SPEC]);
  const t = head.ctx.tables.get(1);
  // Key 5 has a row (clock 0 applied); key 6 is first pushed in clock 1, still open: a sum, no row.
  const owned = (k: number) => now.chainOf(1, k, 0)[0]!.nodeId === 'server-0';
  const [k5, k6] = [...Array(200).keys()].filter(owned).slice(0, 2).map(BigInt);
  head.ctx.gate.take(t, 0, BigUint64Array.of(k5!), new Float32Array(DIM).fill(1));
  head.ctx.gate.clock(0, 1);
  head.ctx.gate.take(t, 1, BigUint64Array.of(k5!, k6!), new Float32Array(2 * DIM).fill(2));
  assert.is(t.store.rows, 1, 'key 6 has no row yet');
  new Replication(head.ctx).rereplicate(old);
  const pending = sent.filter((b): b is Extract<Body, { type: 'copyPending' }> => b.type === 'copyPending');
  assert.equal(pending.map((b) => [b.clock, [...b.keys].sort()]), [[1, [k5!, k6!].sort()]], 'the open clock\'s sums of both keys');
  // The new replica, fed what was sent, then both see Clock(2): the same rows.
  const replica = server('server-2');
  replica.member.view = now;
  replica.ctx.tables.declare([SPEC]);
  const rep = new Replication(replica.ctx);
  for (const b of sent) (b.type === 'copyRows' ? rep.copyIn(b as never) : rep.copyPendingIn(b as never));
  head.ctx.gate.clock(0, 2);
  replica.ctx.gate.clock(0, 2);
  for (const k of [k5!, k6!]) assert.equal(rowOf(replica.ctx, k), rowOf(head.ctx, k), `key ${k} on the replica and the head`);
  assert.ok(near(rowOf(head.ctx, k6!), [-0.2, -0.2]), `key 6: ${rowOf(head.ctx, k6!)}`);
});

test('a new replica that applied clock c already applies the head\'s unapplied sums of c to the copied rows on arrival', () => {
  const { ctx, member } = server('server-0');
  member.view = view(4, [0, 1]); // R = 2 of 2: server-0 is in every key's chain
  ctx.tables.declare([SPEC]);
  const t = ctx.tables.get(1);
  // Clock 0 applied here: a push of key 9, then worker 0's Clock(1).
  ctx.gate.take(t, 0, keysOf(9), new Float32Array(DIM).fill(1));
  ctx.gate.clock(0, 1);
  assert.is(t.appliedClock, 0);
  // The head copies key 5 (value 1, clock 0 not applied there yet) and its sum of clock 0 (1).
  const rep = new Replication(ctx);
  rep.copyIn(copyRows([5n], 1) as never);
  rep.copyPendingIn({ type: 'copyPending', table: 1, clock: 0, keys: keysOf(5), sums: new Float64Array(DIM).fill(1), applied: [] });
  // What the head computes when its Clock(1) arrives: 1 - 0.1 x 1 (dropping the sum left 1).
  assert.ok(near(rowOf(ctx, 5n), [0.9, 0.9]), `key 5 on the new replica: ${rowOf(ctx, 5n)}`);
  assert.is(t.pending.size, 0, 'nothing left pending for an applied clock');
});

test('a new replica that has not applied clock c yet sums the copied sums for c, applied once when c completes', () => {
  const { ctx, member } = server('server-0');
  member.view = view(4, [0, 1]);
  ctx.tables.declare([SPEC]);
  const rep = new Replication(ctx);
  rep.copyIn(copyRows([5n], 1) as never);
  rep.copyPendingIn({ type: 'copyPending', table: 1, clock: 0, keys: keysOf(5), sums: new Float64Array(DIM).fill(1), applied: [] });
  assert.ok(near(rowOf(ctx, 5n), [1, 1]), 'not applied before the clock completes');
  ctx.gate.clock(0, 1);
  assert.ok(near(rowOf(ctx, 5n), [0.9, 0.9]), `key 5 after Clock(1): ${rowOf(ctx, 5n)}`);
  // A copy naming no clock number is refused and changes nothing.
  assert.throws(() => rep.copyPendingIn({ type: 'copyPending', table: 1, clock: -1, keys: keysOf(5), sums: new Float64Array(DIM).fill(1), applied: [] }),
    (e: Error) => /names clock -1, not a clock number/.test(e.message));
  assert.ok(near(rowOf(ctx, 5n), [0.9, 0.9]), 'unchanged');
});

test('a clock completing mid take-over applies nothing until every source has answered, and drops no source\'s sums', async () => {
  let release!: () => void;
  const late = new Promise<void>((r) => { release = r; });
  // server-1 hands key 5, server-2 (answering late) key 6: each with its BSP sum 1 of clock 0.
  const { ctx, member } = server('server-0', async (id, body) => {
    const key = id === 'server-1' ? 5n : 6n;
    if (id === 'server-2') await late;
    if (body.type === 'handoffMetaRequest') {
      const pending = [{ table: 1, clock: 0, keys: BigUint64Array.of(key), sums: new Float64Array(DIM).fill(1), applied: [] }];
      return { type: 'handoffMeta', tables: [{ spec: SPEC, rows: 1, applied: [], pending }], clocks: [{ rank: 0, clock: 0 }], wholePushes: [] };
    }
    if (body.type === 'handoffRequest') return copyRows([key], 1);
    throw new Error(`unexpected ${body.type}`);
  });
  const handoff = new Handoff(ctx, () => {});
  const show = (v: ClusterView, prev: ClusterView, joined: boolean) => { member.view = v; handoff.onView(v, prev, joined); };
  const basis = view(3, [1, 2]), joined = view(4, [0, 1, 2], { 0: 4 });
  show(basis, ClusterView.empty(), false);
  show(joined, basis, true);
  const serving = handoff.inProgress!;
  await new Promise((r) => setTimeout(r, 50));
  assert.is(ctx.tables.get(1).store.rows, 1, 'server-1\'s part is in');
  // Worker 0 finishes clock 0 (its Clock(1) reaches this server during the take-over).
  ctx.gate.clock(0, 1);
  assert.ok(near(rowOf(ctx, 5n), [1, 1]), 'nothing applied while server-2\'s part is missing');
  assert.is(await settledWithin(serving, 100), 'pending');
  release();
  await serving;
  assert.ok(near(rowOf(ctx, 5n), [0.9, 0.9]), `key 5: ${rowOf(ctx, 5n)}`);
  assert.ok(near(rowOf(ctx, 6n), [0.9, 0.9]), `key 6 (server-2's sum, dropped before): ${rowOf(ctx, 6n)}`);
  assert.is(ctx.tables.get(1).appliedClock, 0);
});

test.run();
