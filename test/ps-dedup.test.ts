// Retried pushes are applied once per row. After a server dies, a client re-routes the rows of an
// unacknowledged push, and one push number can reach a server in disjoint parts (as the head of
// some rows, and forwarded by another head for others): each part must be applied, each row once.
// Deduplicating whole push numbers lost such a part (found by the kill -9 replication test).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, table, keysOf, SECRET } from './helpers/cluster.ts';
import { dial, RemoteError } from '../src/transport/index.ts';
import { Consistency, ErrorCode, Role, type PushBody } from '../src/wire/codec.ts';
import { PushDeduper } from '../src/server/push-deduper.ts';

test('PushDeduper: rows of one push number are remembered per row', () => {
  const d = new PushDeduper();
  assert.is(d.unapplied('w', 7, keysOf(1, 2)), null, 'a new number: every row');
  d.record('w', 7, keysOf(1, 2));
  assert.equal(Array.from(d.unapplied('w', 7, keysOf(3, 2, 4, 1))!), [0, 2], 'rows 3 and 4 are new');
  d.record('w', 7, keysOf(3));
  assert.equal(Array.from(d.unapplied('w', 7, keysOf(1, 2, 3))!), []);
  assert.is(d.unapplied('v', 7, keysOf(1)), null, 'other senders are apart');
  assert.ok(d.seen('w', 7) && !d.seen('w', 8));
  d.record('h', 9); // from a handoff: the whole number
  assert.equal(Array.from(d.unapplied('h', 9, keysOf(5))!), []);
  assert.equal(d.wholePushes(), [['h', [9]]]);
  d.record('w', 8, keysOf(1, 5), 2);
  assert.equal(d.appliedRows(2, (k) => k !== 1).map((a) => [a.sender, a.seq, Array.from(a.keys)]), [['w', 8, [5n]]], 'per table and filtered by row');
});

test('PushDeduper: past its row budget the oldest pushes count as applied in full', () => {
  const d = new PushDeduper();
  const rows = BigUint64Array.from({ length: 4096 }, (_, i) => BigInt(i));
  for (let seq = 0; seq < 100; seq++) d.record('w', seq, rows, 1); // 409 600 rows, over the 2^18 budget
  assert.equal(Array.from(d.unapplied('w', 0, keysOf(99999))!), [], 'oldest: whole');
  assert.equal(Array.from(d.unapplied('w', 99, keysOf(99999, 5))!), [0], 'newest: per row');
  assert.ok(d.wholePushes()[0]![1].includes(0) && !d.wholePushes()[0]![1].includes(99));
});

test('PushDeduper: past its window of 65 536 numbers a sender\'s oldest numbers go first, in the order they came', () => {
  const d = new PushDeduper();
  const window = 1 << 16, n = 3 * window + 77, key = keysOf(1);
  // Numbers that do not grow with arrival (a client's parts reach a server out of order): eviction follows arrival.
  const seqOf = (i: number) => (i * 40503) % n; // 40503 is prime to n: every number once
  for (let i = 0; i < n; i++) d.record('w', seqOf(i), key, 1);
  for (const i of [0, 1, 1000, n - window - 1]) assert.not.ok(d.seen('w', seqOf(i)), `arrival ${i} (seq ${seqOf(i)}) was let go`);
  for (const i of [n - window, n - window + 1, n - 2, n - 1]) assert.ok(d.seen('w', seqOf(i)), `arrival ${i} (seq ${seqOf(i)}) is kept`);
  assert.equal(Array.from(d.unapplied('w', seqOf(n - 1), keysOf(1, 2))!), [1], 'a kept number still knows its rows');
});

test('a server applies each part of a re-routed push once, whichever way it arrives', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const reader = await c.client('reader');
    await reader.declareTables([table({ id: 1, dim: 2, init: 'zeros', initScale: 0, optimizer: 'sgd', hyper: { lr: -1 }, consistency: Consistency.ASP })]);
    const url = c.servers[0]!.url, epoch = () => reader.view.epoch;
    const worker = (await dial(url, { nodeId: 'w1', secret: SECRET, role: Role.Worker, epoch })).conn;
    // Replication is taken from the servers of the view only: this link speaks as the one server.
    const peerServer = (await dial(url, { nodeId: 'server-0', secret: SECRET, role: Role.Server, epoch })).conn;
    const push = (keys: BigUint64Array): PushBody => ({ type: 'push', table: 1, keys, values: new Float32Array(keys.length * 2).fill(1), worker: 1, clock: 0, seq: 7 });
    // Rows 10, 11 forwarded by another head as replicas of push 7; rows 20, 21 of the same push sent here directly.
    await peerServer.request({ type: 'replicaPush', push: push(keysOf(10, 11)), origin: 'w1' });
    const ack = await worker.request(push(keysOf(20, 21)));
    assert.is(ack.body.type === 'pushAck' && ack.body.applied, true, 'the second part is applied, not taken for a duplicate');
    // The whole push again (a retry), and again with one new row: only the new row is added.
    await worker.request(push(keysOf(10, 11, 20, 21)));
    await worker.request(push(keysOf(21, 30)));
    const rows = await reader.pull(1, keysOf(10, 11, 20, 21, 30));
    assert.equal(Array.from(rows), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 'every row once');
    // Replication traffic from a worker is refused: it could speak for another worker.
    try {
      await worker.request({ type: 'replicaPush', push: { ...push(keysOf(40)), seq: 8 }, origin: 'w2' });
      assert.unreachable('replicaPush from a worker must be refused');
    } catch (e) {
      assert.instance(e, RemoteError);
      assert.is(ErrorCode[(e as RemoteError).code], 'Unsupported');
      assert.match((e as Error).message, /replicaPush from w1, which is not a server/);
    }
    assert.equal(Array.from(await reader.pull(1, keysOf(40))), [0, 0]);
    await Promise.all([worker.close(), peerServer.close()]);
  } finally { await c.close(); }
});

test('sums copied to a new replica carry their pushes: the same push forwarded later is not counted twice', async () => {
  // A head copies a BSP clock's unapplied sums to a new replica after a view change, then a
  // worker's retry of a push already in those sums is forwarded to the replica as well.
  const c = await startCluster({ servers: 1 });
  try {
    const reader = await c.client('reader');
    await reader.declareTables([table({ id: 1, dim: 2, init: 'zeros', initScale: 0, optimizer: 'sgd', hyper: { lr: -1 }, consistency: Consistency.BSP })]);
    const url = c.servers[0]!.url, epoch = () => reader.view.epoch;
    // As a server of the view (only those may copy): the link takes the one server's identity.
    const head = (await dial(url, { nodeId: 'server-0', secret: SECRET, role: Role.Server, epoch })).conn;
    const keys = keysOf(10, 11);
    await head.request({ type: 'copyPending', table: 1, clock: 0, keys, sums: Float64Array.of(3, 3, 3, 3), applied: [{ sender: 'w1', seq: 5, keys }] });
    const retry: PushBody = { type: 'push', table: 1, keys, values: new Float32Array(4).fill(3), worker: 1, clock: 0, seq: 5 };
    const ack = await head.request({ type: 'replicaPush', push: retry, origin: 'w1' });
    assert.is(ack.body.type === 'pushAck' && ack.body.applied, false);
    await reader.clock();
    assert.equal(Array.from(await reader.pull(1, keys, { clock: 1 })), [3, 3, 3, 3], 'the copied sum once, not twice');
    await head.close();
  } finally { await c.close(); }
});

test.run();
