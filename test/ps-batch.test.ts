// Batched pulls and pushes (PullBatch / PushBatch): a step over 26 tables sends one pull and one
// push frame per server, with the same values and the same applied updates as one message per
// table; a bad part refuses the whole message and changes nothing; a part sent to a server that
// does not own it is refused (WrongOwner) and the client re-routes it under the next view.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, table, keysOf, randomFloats, SECRET, type TestCluster } from './helpers/cluster.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { PsServer } from '../src/server/ps-server.ts';
import { dial, FramedSocket, RemoteError } from '../src/transport/index.ts';
import { Consistency, ErrorCode, Role } from '../src/wire/codec.ts';
import type { ClusterView } from '../src/cluster/cluster-view.ts';
import { RequestCoalescer, MAX_BATCH_VALUE_BYTES } from '../src/client/request-coalescer.ts';

const TABLES = 26;
const dimOf = (i: number) => 2 + (i % 5);

async function connect(c: TestCluster, nodeId: string, coalesce: boolean): Promise<PSClient> {
  const client = await PSClient.connect({ secret: SECRET, schedulerUrl: c.scheduler.url, nodeId, heartbeatIntervalMs: 200, coalesce });
  c.clients.push(client);
  await client.waitForView((v) => v.servers.length === c.servers.length && client.rank >= 0);
  return client;
}

/** Three BSP steps over 26 AdaGrad tables (pull all, push all, clock): final rows and frames per server per step. */
async function run(coalesce: boolean): Promise<{ rows: Float32Array[]; pullFrames: number[][]; pushFrames: number[][] }> {
  const c = await startCluster({ servers: 2 });
  try {
    const w = await connect(c, 'w0', coalesce);
    const specs = Array.from({ length: TABLES }, (_, i) => table({ id: i + 1, dim: dimOf(i), init: 'uniform', initScale: 0.3, optimizer: 'adagrad', hyper: { lr: 0.1 } }));
    await w.declareTables(specs);
    const keys = specs.map((_, i) => keysOf(...Array.from({ length: 40 }, (_, k) => k * 7919 + i)));
    const pullFrames: number[][] = [], pushFrames: number[][] = [];
    for (let step = 0; step < 3; step++) {
      const before = c.servers.map((s) => ({ ...s.stats }));
      const rows = await Promise.all(specs.map((s, i) => w.pull(s.id, keys[i]!, { clock: step })));
      assert.is(rows.length, TABLES);
      await Promise.all(specs.map((s, i) => w.push(s.id, keys[i]!, randomFloats(keys[i]!.length * s.dim, 100 * step + i), { clock: step })));
      pullFrames.push(c.servers.map((s, j) => s.stats.pullFrames - before[j]!.pullFrames));
      pushFrames.push(c.servers.map((s, j) => s.stats.pushFrames - before[j]!.pushFrames));
      await w.clock();
    }
    const rows = await w.pullMany(specs.map((s, i) => ({ table: s.id, keys: keys[i]!, clock: 3 })));
    return { rows: rows.map((r) => r.slice()), pullFrames, pushFrames };
  } finally { await c.close(); }
}

test('26 tables: one pull and one push frame per server per step, the same rows and updates as one message per table', async () => {
  const batched = await run(true);
  const single = await run(false);
  for (let i = 0; i < TABLES; i++) assert.equal(Array.from(batched.rows[i]!), Array.from(single.rows[i]!), `table ${i + 1}`);
  assert.equal(batched.pullFrames, [[1, 1], [1, 1], [1, 1]], 'one pull frame per server per step');
  assert.equal(batched.pushFrames, [[1, 1], [1, 1], [1, 1]], 'one push frame per server per step');
  assert.equal(single.pullFrames, [[TABLES, TABLES], [TABLES, TABLES], [TABLES, TABLES]], 'without coalescing: one per table');
});

test('a batch of contiguous parts goes out as the frame around them and the gradients where they are, and applies as a copied one', async () => {
  const c = await startCluster({ servers: 2 });
  const sent = FramedSocket.prototype.sendParts;
  let gathered = 0;
  FramedSocket.prototype.sendParts = function (this: FramedSocket, parts, cb) { gathered++; return sent.call(this, parts, cb); };
  try {
    const w = await connect(c, 'w0', true), dim = 16;
    const specs = [1, 2, 3].map((id) => table({ id, dim, init: 'uniform', initScale: 0.3, optimizer: 'sgd', hyper: { lr: 0.5 }, consistency: Consistency.ASP }));
    await w.declareTables(specs);
    // Keys grouped by owner, as a worker's batch prep groups them: each server's part of each table is one run.
    const keys = specs.map((s) => w.groupByOwner(s.id, keysOf(...Array.from({ length: 300 }, (_, k) => k * 7919 + s.id))).keys);
    const before = await Promise.all(specs.map((s, i) => w.pull(s.id, keys[i]!).then((r) => r.slice())));
    const grads = specs.map((_, i) => randomFloats(keys[i]!.length * dim, 40 + i));
    await Promise.all(specs.map((s, i) => w.push(s.id, keys[i]!, grads[i]!)));
    assert.ok(gathered >= 2, `the pushes went out as gathered frames (${gathered})`);
    const after = await Promise.all(specs.map((s, i) => w.pull(s.id, keys[i]!)));
    for (let i = 0; i < specs.length; i++) {
      const want = before[i]!.map((v, j) => Math.fround(v - Math.fround(0.5 * grads[i]![j]!)));
      assert.equal(Array.from(after[i]!), Array.from(want), `table ${i + 1}: w - lr * g, every row`);
    }
  } finally { FramedSocket.prototype.sendParts = sent; await c.close(); }
});

test('a bad part refuses the whole batch and changes nothing', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const reader = await c.client('reader');
    const asp = { init: 'zeros', initScale: 0, optimizer: 'sgd', hyper: { lr: -1 }, consistency: Consistency.ASP };
    await reader.declareTables([table({ id: 1, dim: 2, ...asp }), table({ id: 2, dim: 3, ...asp })]);
    const conn = (await dial(c.servers[0]!.url, { nodeId: 'w1', secret: SECRET, role: Role.Worker, epoch: () => reader.view.epoch })).conn;
    const good = { table: 1, keys: keysOf(1, 2), seq: 1, offset: 0 };
    const cases: [string, ErrorCode, Parameters<typeof conn.request>[0]][] = [
      ['a non-finite value in the second part', ErrorCode.NonFinite,
        { type: 'pushBatch', parts: [good, { table: 2, keys: keysOf(5), seq: 2, offset: 4 }], values: Float32Array.of(1, 1, 1, 1, 1, NaN, 1), worker: 0, clock: 0 }],
      ['an unknown table', ErrorCode.UnknownTable,
        { type: 'pushBatch', parts: [good, { table: 9, keys: keysOf(5), seq: 2, offset: 4 }], values: new Float32Array(7).fill(1), worker: 0, clock: 0 }],
      ['values past the end', ErrorCode.BadDimension,
        { type: 'pushBatch', parts: [good, { table: 2, keys: keysOf(5, 6), seq: 2, offset: 4 }], values: new Float32Array(7).fill(1), worker: 0, clock: 0 }],
      ['one seq twice', ErrorCode.Malformed,
        { type: 'pushBatch', parts: [good, { table: 2, keys: keysOf(5), seq: 1, offset: 4 }], values: new Float32Array(7).fill(1), worker: 0, clock: 0 }],
      ['a key of 2^48 in a pull part', ErrorCode.Malformed,
        { type: 'pullBatch', parts: [{ table: 1, keys: keysOf(1) }, { table: 2, keys: BigUint64Array.of(2n ** 48n) }], clock: -1, worker: 0 }],
    ];
    for (const [what, code, body] of cases) {
      try {
        await conn.request(body);
        assert.unreachable(what);
      } catch (e) {
        assert.instance(e, RemoteError, what);
        assert.is(ErrorCode[(e as RemoteError).code], ErrorCode[code], `${what}: ${(e as Error).message}`);
      }
    }
    assert.equal(Array.from(await reader.pull(1, keysOf(1, 2))), [0, 0, 0, 0], 'the good part was not applied');
    assert.equal(Array.from(await reader.pull(2, keysOf(5, 6))), [0, 0, 0, 0, 0, 0]);
    // And the good batch, now: both parts applied, each acknowledged with its seq.
    const ack = await conn.request({ type: 'pushBatch', parts: [good, { table: 2, keys: keysOf(5), seq: 2, offset: 4 }], values: Float32Array.of(1, 2, 3, 4, 5, 6, 7), worker: 0, clock: 0 });
    assert.equal(ack.body.type === 'pushBatchAck' && ack.body.acks, [{ seq: 1, applied: true }, { seq: 2, applied: true }]);
    assert.equal(Array.from(await reader.pull(2, keysOf(5))), [5, 6, 7]);
    conn.close();
  } finally { await c.close(); }
});

test('a part sent to a server that does not own it refuses the batch (WrongOwner); the client re-routes it under the next view', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const w = await c.client('w0');
    const asp = { init: 'zeros', initScale: 0, optimizer: 'sgd', hyper: { lr: -1 }, consistency: Consistency.ASP };
    await w.declareTables([table({ id: 1, dim: 2, ...asp }), table({ id: 2, dim: 2, ...asp })]);
    const oneServer: ClusterView = w.view;
    c.servers.push(await PsServer.start({ secret: SECRET, checkpointRoot: c.checkpointRoot, schedulerUrl: c.scheduler.url, nodeId: 'server-1', heartbeatIntervalMs: 200 }));
    await w.waitForView((v) => v.servers.length === 2);
    await c.servers[0]!.whenServing();
    await c.servers[1]!.whenServing();
    const keys = keysOf(...Array.from({ length: 64 }, (_, i) => i));
    // Straight to server-0, a batch whose second part holds keys server-1 now owns: refused whole.
    const conn = (await dial(c.servers[0]!.url, { nodeId: 'w9', secret: SECRET, role: Role.Worker, epoch: () => w.view.epoch })).conn;
    const mine = w.view.ring.partition(1, keys)[w.view.servers.findIndex((s) => s.nodeId === 'server-0')]!;
    const mineKeys = BigUint64Array.from(mine, (i) => keys[i]!);
    try {
      await conn.request({ type: 'pushBatch', parts: [{ table: 1, keys: mineKeys, seq: 1, offset: 0 }, { table: 2, keys, seq: 2, offset: mineKeys.length * 2 }], values: new Float32Array((mineKeys.length + 64) * 2).fill(1), worker: 0, clock: 0 });
      assert.unreachable('a part with keys of another server');
    } catch (e) {
      assert.is(ErrorCode[(e as RemoteError).code], 'WrongOwner', (e as Error).message);
    }
    conn.close();
    assert.equal(Array.from(await w.pull(1, mineKeys)), new Array(mineKeys.length * 2).fill(0), 'nothing applied');
    // The client routes its first attempt of each table under the old view (every key to server-0).
    const proto = Object.getOwnPropertyDescriptor(PSClient.prototype, 'view')!.get!;
    let stale = 2;
    Object.defineProperty(w, 'view', { configurable: true, get: () => (stale-- > 0 ? oneServer : proto.call(w)) });
    const ones = new Float32Array(64 * 2).fill(1);
    await Promise.all([w.push(1, keys, ones), w.push(2, keys, ones)]);
    assert.ok(stale <= 0, 'the stale view was used');
    assert.equal(Array.from(await w.pull(1, keys)), new Array(128).fill(1), 'table 1: every row once');
    assert.equal(Array.from(await w.pull(2, keys)), new Array(128).fill(1), 'table 2: every row once');
  } finally { await c.close(); }
});

test('rows pulled with their optimizer state: AdaGrad\'s accumulator and the update count as the servers hold them, across 2 servers', async () => {
  const c = await startCluster({ servers: 2 });
  try {
    const client = await c.client('state');
    await client.declareTables([table({ id: 1, dim: 3, init: 'uniform', initScale: 1, optimizer: 'adagrad', hyper: { lr: 0.1 }, consistency: Consistency.ASP })]);
    const keys = keysOf(1, 2, 3, 4, 5, 6, 7, 8), g = randomFloats(keys.length * 3, 9);
    const before = await client.pull(1, keys);
    await client.push(1, keys, g);
    await client.push(1, keys.subarray(0, 4), g.subarray(0, 12));
    const got = await client.pullWithState(1, keys);
    assert.is(got.state.slots.length, 1);
    for (let j = 0; j < keys.length; j++) {
      const twice = j < 4;
      assert.is(got.state.steps[j], twice ? 2 : 1, `key ${j}: update count`);
      for (let d = 0; d < 3; d++) {
        const x = g[j * 3 + d]!, acc = Math.fround(twice ? Math.fround(x * x) + x * x : x * x);
        assert.is(got.state.slots[0]![j * 3 + d], acc, `key ${j}: accumulator`);
      }
    }
    assert.equal(Array.from(got.rows), Array.from(await client.pull(1, keys)), 'the rows as a plain pull gives them');
    assert.not.equal(Array.from(got.rows), Array.from(before));
  } finally {
    await c.close();
  }
});

test('the coalescer cuts a batch at MAX_BATCH_VALUE_BYTES and keeps one message per server and clock', async () => {
  const sent: string[] = [];
  const send = async (serverId: string, body: { type: string; parts?: { keys: BigUint64Array }[]; keys?: BigUint64Array; clock?: number }) => {
    sent.push(`${serverId}:${body.type}:${body.parts?.length ?? 1}:${body.clock}`);
    const parts = body.parts ?? [{ keys: body.keys! }];
    const n = parts.reduce((a, p) => a + p.keys.length, 0);
    const offsets = Uint32Array.from(parts, (_, i) => parts.slice(0, i).reduce((a, p) => a + p.keys.length, 0));
    return { body: { type: body.type === 'pull' ? 'pullReply' : 'pullBatchReply', values: new Float32Array(n), offsets, dims: new Uint32Array(parts.length).fill(1) } };
  };
  const co = new RequestCoalescer(send as never, () => 0, 'f32');
  const big = MAX_BATCH_VALUE_BYTES / 4 / 2 + 1; // rows of dim 1: two of them overflow one batch
  const keys = new BigUint64Array(big);
  await Promise.all([co.pull('s0', 1, keys, 1, 0), co.pull('s0', 2, keys, 1, 0), co.pull('s0', 3, keysOf(1), 1, 0), co.pull('s1', 1, keysOf(1), 1, 0), co.pull('s0', 4, keysOf(1), 1, 1)]);
  assert.equal(sent.sort(), ['s0:pull:1:0', 's0:pull:1:1', 's0:pullBatch:2:0', 's1:pull:1:0'].sort());
});

test.run();
