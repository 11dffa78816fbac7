// Authorization by role and identity (docs/wire.md, "Authorization"): an authenticated peer with
// the secret (a buggy or compromised worker) cannot replicate rows, write NaN or Inf optimizer
// slots, seed rows unless it is rank 0, or clock for another worker. Each refusal names the
// cause and changes nothing; an honest worker sees the rows and clocks it would have seen.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, table, keysOf, SECRET, allJoined } from './helpers/cluster.ts';
import { dial, RemoteError, type Connection } from '../src/transport/index.ts';
import { Consistency, ErrorCode, Role, type BodyOf } from '../src/wire/codec.ts';
import type { RequestBody } from '../src/wire/replies.ts';

const DIM = 4;

async function refused(conn: Connection, body: RequestBody, code: ErrorCode, pattern: RegExp): Promise<void> {
  const e = await conn.request(body).then(() => null, (err: Error) => err);
  assert.instance(e, RemoteError, `${body.type} from ${conn.peerId === '?' ? 'a peer' : 'the link'} should be refused`);
  assert.is(ErrorCode[(e as RemoteError).code], ErrorCode[code], (e as Error).message);
  assert.match((e as Error).message, pattern);
}

const copyRows = (keys: BigUint64Array, slot: number): BodyOf<'copyRows'> => ({
  type: 'copyRows', table: 1, keys, values: new Float32Array(keys.length * DIM), slots: new Float32Array(keys.length * DIM).fill(slot), slotCount: 1, steps: new Uint32Array(keys.length),
});

test('5. copyRows with NaN or Inf slots: refused from a worker, refused from a server; the row stays honest after the next push', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const good = await c.client('worker-0');
    await good.declareTables([table({ id: 1, dim: DIM, init: 'zeros', optimizer: 'adagrad', hyper: { lr: 0.5 }, consistency: Consistency.ASP })]);
    const epoch = () => good.view.epoch;
    // The attacked keys 1 (NaN slots) and 2 (Inf slots), and key 3 that no one touches.
    const attacked = keysOf(1, 2), control = keysOf(3);
    const worker = (await dial(c.servers[0]!.url, { nodeId: 'worker-0', secret: SECRET, role: Role.Worker, epoch })).conn;
    await refused(worker, copyRows(attacked.subarray(0, 1), NaN), ErrorCode.Unsupported, /copyRows from worker-0, which is not a server in view \d+ \(a worker\)/);
    await refused(worker, copyRows(attacked.subarray(1), Infinity), ErrorCode.Unsupported, /which is not a server/);
    // Even under a server's identity, a non-finite slot is refused before anything changes.
    const server = (await dial(c.servers[0]!.url, { nodeId: 'server-0', secret: SECRET, role: Role.Server, epoch })).conn;
    await refused(server, copyRows(attacked.subarray(0, 1), NaN), ErrorCode.NonFinite, /copyRows slot 0 is not finite/);
    await refused(server, copyRows(attacked.subarray(1), Infinity), ErrorCode.NonFinite, /copyRows slot 0 is not finite/);
    // An honest push to all three: each attacked row moves exactly as the untouched one does.
    await good.push(1, keysOf(1, 2, 3), new Float32Array(3 * DIM).fill(1));
    const rows = await good.pull(1, keysOf(1, 2, 3));
    const ctl = Array.from(await good.pull(1, control));
    assert.ok(ctl.every((v) => Number.isFinite(v) && v !== 0), `the control row moved: ${ctl}`);
    assert.equal(Array.from(rows.subarray(0, DIM)), ctl, 'row 1 (NaN slots sent) updates like the control row');
    assert.equal(Array.from(rows.subarray(DIM, 2 * DIM)), ctl, 'row 2 (Inf slots sent) updates like the control row');
    await Promise.all([worker.close(), server.close()]);
  } finally { await c.close(); }
});

test('replication from a worker, or from a server not in the view, is refused; copies of keys this server does not hold too', async () => {
  const c = await startCluster({ servers: 2 });
  try {
    const good = await c.client('worker-0');
    await good.declareTables([table({ id: 1, dim: DIM, init: 'zeros', optimizer: 'adagrad', hyper: { lr: 0.5 }, consistency: Consistency.BSP })]);
    const epoch = () => good.view.epoch;
    const url0 = c.servers[0]!.url;
    // Keys 0..63 split between the two servers; server-0 holds `mine`, server-1 holds `theirs`.
    const all = Array.from({ length: 64 }, (_, i) => BigInt(i));
    const mine = BigUint64Array.from(all.filter((k) => good.view.ownerOf(1, k).nodeId === 'server-0'));
    const theirs = BigUint64Array.from(all.filter((k) => good.view.ownerOf(1, k).nodeId === 'server-1'));
    assert.ok(mine.length > 0 && theirs.length > 0);
    const before = await good.pull(1, keysOf(...all.map(Number)));
    const push: BodyOf<'push'> = { type: 'push', table: 1, keys: mine.subarray(0, 1), values: new Float32Array(DIM).fill(1), worker: 0, clock: 0, seq: 9 };
    const pending: BodyOf<'copyPending'> = { type: 'copyPending', table: 1, clock: 0, keys: mine.subarray(0, 1), sums: new Float64Array(DIM).fill(5), applied: [] };
    // A server the view does not list (declared dead, or never registered) is fenced: Fenced, retried under the next view.
    for (const [nodeId, role, why, code] of [
      ['worker-0', Role.Worker, /from worker-0, which is not a server in view \d+ \(a worker\)/, ErrorCode.Unsupported],
      ['evil', Role.Client, /from evil, which is not a server in view \d+ \(a client\)/, ErrorCode.Unsupported],
      ['server-9', Role.Server, /from server-9 \(sent under view \d+\), which is not a server in view \d+ \(a server not registered\).*fenced by view \d+/, ErrorCode.Fenced],
    ] as const) {
      const conn = (await dial(url0, { nodeId, secret: SECRET, role, epoch })).conn;
      await refused(conn, copyRows(mine.subarray(0, 1), 0), code, why);
      await refused(conn, { type: 'replicaPush', push, origin: 'worker-0' }, code, why);
      await refused(conn, pending, code, why);
      await refused(conn, { type: 'handoffMetaRequest' }, code, why);
      await refused(conn, { type: 'handoffRequest', table: 1, offset: 0, limit: 10 }, code, why);
      await conn.close();
    }
    // A server of the view copying keys that server-0 does not hold in its chains.
    const peer = (await dial(url0, { nodeId: 'server-1', secret: SECRET, role: Role.Server, epoch })).conn;
    await refused(peer, copyRows(theirs.subarray(0, 1), 0), ErrorCode.WrongOwner, /belongs to server-1 .*not server-0/);
    await refused(peer, { ...pending, keys: theirs.subarray(0, 1) }, ErrorCode.WrongOwner, /belongs to server-1 .*not server-0/);
    await refused(peer, { ...pending, sums: new Float64Array(DIM).fill(NaN) }, ErrorCode.NonFinite, /copyPending sum 0 is not finite/);
    await peer.close();
    // Nothing changed: after the clock completes, every row is as before.
    await good.clock();
    assert.equal(Array.from(await good.pull(1, keysOf(...all.map(Number)), { clock: 1 })), Array.from(before), 'no row changed');
  } finally { await c.close(); }
});

test('assignRows: from a server of the view or the rank-0 worker only', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const w0 = await c.client('worker-0');
    const w1 = await c.client('worker-1');
    await allJoined([w0, w1], 2);
    const spec = table({ id: 1, dim: DIM, init: 'zeros', optimizer: 'sgd', hyper: { lr: 1 }, consistency: Consistency.ASP });
    await w0.declareTables([spec]);
    await w1.declareTables([spec]);
    const keys = keysOf(1, 2);
    const epoch = () => w0.view.epoch;
    const assign = (fill: number): RequestBody => ({ type: 'assignRows', table: 1, keys, values: new Float32Array(2 * DIM).fill(fill) });
    for (const [nodeId, role, why] of [
      ['worker-1', Role.Worker, /assignRows from worker-1, which is not a server or the rank-0 worker of view \d+ \(it is worker rank 1\)/],
      ['tool', Role.Client, /assignRows from tool, which is not a server or the rank-0 worker .*\(a client not in the view\)/],
      ['worker-7', Role.Worker, /\(a worker not in the view\)/],
    ] as const) {
      const conn = (await dial(c.servers[0]!.url, { nodeId, secret: SECRET, role, epoch })).conn;
      await refused(conn, assign(7), ErrorCode.Unsupported, why);
      await conn.close();
    }
    assert.equal(Array.from(await w0.pull(1, keys)), new Array(2 * DIM).fill(0), 'rows unchanged');
    await w0.assignRange(1, 0, new Float32Array(2 * DIM).fill(3));
    assert.equal(Array.from(await w1.pull(1, keysOf(0, 1))), new Array(2 * DIM).fill(3), 'rank 0 seeds rows');
  } finally { await c.close(); }
});

test('7. clock for another rank is refused and the clock table is unchanged: an honest BSP pull still waits', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const w0 = await c.client('worker-0');
    const w1 = await c.client('worker-1');
    await allJoined([w0, w1], 2);
    assert.equal([w0.rank, w1.rank], [0, 1]);
    await w0.declareTables([table({ id: 1, dim: DIM, init: 'zeros', optimizer: 'sgd', hyper: { lr: 1 }, consistency: Consistency.BSP })]);
    const epoch = () => w0.view.epoch;
    for (const [nodeId, role, why] of [
      ['worker-0', Role.Worker, /clock from worker-0, for worker rank 1, and the sender is worker rank 0 in view \d+; a worker clocks its own rank only/],
      ['evil', Role.Worker, /clock from evil, for worker rank 1, and the sender is not a worker in view \d+/],
      ['tool', Role.Client, /clock from tool, for worker rank 1, and the sender is not a worker in view/],
      ['server-0', Role.Server, /clock from server-0, for worker rank 1, and the sender is not a worker/],
    ] as const) {
      const conn = (await dial(c.servers[0]!.url, { nodeId, secret: SECRET, role, epoch })).conn;
      await refused(conn, { type: 'clock', worker: 1, clock: 5 }, ErrorCode.Unsupported, why);
      await conn.close();
    }
    // Worker 0 finishes step 0; worker 1 has not: a pull at clock 1 waits for worker 1.
    await w0.push(1, keysOf(1), new Float32Array(DIM).fill(1));
    await w0.clock();
    let done = false;
    const pull = w0.pull(1, keysOf(1), { clock: 1 }).then((v) => { done = true; return v; });
    await new Promise((r) => setTimeout(r, 400));
    assert.is(done, false, 'the pull waits for worker 1 (its clock was not advanced by another peer)');
    await w1.clock();
    assert.equal(Array.from(await pull), new Array(DIM).fill(-1), 'applied once worker 1 finished the step');
  } finally { await c.close(); }
});

test.run();
