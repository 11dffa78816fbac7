// bf16 rows through real servers: a bf16 client's pulls are the servers' f32 rows rounded to
// bf16, its pushes arrive as the bf16-rounded gradients and are applied to f32 rows (which an
// f32 client then reads unrounded), batched and single-table alike, counted at 2 bytes a value;
// optimizer state is refused on a bf16 wire, and a pull asking for a format the server does not
// know gets an error reply naming it (not a timeout).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as flatbuffers from 'flatbuffers';
import { startCluster, table, keysOf, SECRET } from './helpers/cluster.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { dial } from '../src/transport/index.ts';
import { decode, ErrorCode, Role } from '../src/wire/codec.ts';
import * as W from '../src/wire/generated/hybridps/wire.ts';
import { bf16ToF32, f32ToBf16 } from '../src/wire/bf16.ts';
import { randomFloats } from './helpers/random.ts';

const DIM = 8;
const c = await startCluster({ servers: 2 });
const exact = await c.client('f32-reader');
const connect = (nodeId: string, o: { format?: 'bf16'; coalesce?: boolean }) =>
  PSClient.connect({ secret: SECRET, schedulerUrl: c.scheduler.url, nodeId, heartbeatIntervalMs: 1000, ...o });
const bf = await connect('bf16-batched', { format: 'bf16' });
const single = await connect('bf16-single', { format: 'bf16', coalesce: false });
for (const x of [bf, single]) await x.waitForView((v) => v.servers.length === 2 && v.workers.some((w) => w.nodeId === x.nodeId));
// SGD with lr 1 (ASP: no clock waits): a row after a push is exactly row - grad, in f32.
const spec = (id: number) => table({ id, dim: DIM, init: 'uniform', initScale: 1, optimizer: 'sgd', hyper: { lr: 1 }, consistency: W.Consistency.ASP });
await exact.declareTables([spec(1), spec(2), table({ id: 3, dim: DIM, optimizer: 'adagrad', hyper: { lr: 0.1 }, consistency: W.Consistency.ASP })]);
for (const x of [bf, single]) await x.declareTables([spec(1), spec(2)]);
const keys = BigUint64Array.from({ length: 200 }, (_, i) => BigInt(i * 7919 + 1)); // spread over both servers
const bf16 = (a: Float32Array) => bf16ToF32(f32ToBf16(a));

test('a bf16 pull is the servers\' f32 rows rounded to bf16, batched or not, at 2 bytes a value', async () => {
  const rows1 = await exact.pull(1, keys), rows2 = await exact.pull(2, keys);
  assert.ok(bf16(rows1).some((v, i) => v !== rows1[i]), 'uniform rows are not all bf16 values: the test can tell');
  const before = bf.bytes.pull;
  const [got1, got2] = await bf.pullMany([{ table: 1, keys }, { table: 2, keys }]); // one PullBatch per server
  assert.equal(Array.from(got1!), Array.from(bf16(rows1)));
  assert.equal(Array.from(got2!), Array.from(bf16(rows2)));
  assert.is(bf.bytes.pull - before, 2 * (keys.length * 8 + keys.length * DIM * 2), 'keys 8 bytes, values 2 bytes each');
  const one = await single.pull(1, keys); // a plain Pull per server
  assert.equal(Array.from(one), Array.from(bf16(rows1)));
  assert.is(single.bytes.pull, keys.length * 8 + keys.length * DIM * 2);
});

test('a bf16 push is applied as the bf16-rounded gradient to f32 rows, which stay f32', async () => {
  for (const [client, id, seed] of [[bf, 1, 5], [single, 2, 6]] as const) {
    const before = await exact.pull(id, keys);
    const grads = randomFloats(keys.length * DIM, seed).map((v) => v * 1e-3);
    const pushed = client.bytes.push;
    await client.push(id, keys, grads);
    assert.is(client.bytes.push - pushed, keys.length * 8 + keys.length * DIM * 2, `${client.nodeId}: counted at 2 bytes a value`);
    const after = await exact.pull(id, keys);
    const g = bf16(grads);
    assert.ok(g.some((v, i) => v !== grads[i]), 'the gradients are not all bf16 values');
    const want = Float32Array.from(before, (w, i) => w - g[i]!); // f32 arithmetic, as the server's SGD
    assert.equal(Array.from(after), Array.from(want), `${client.nodeId}: row - bf16(grad), in f32`);
    assert.ok(after.some((v, i) => v !== bf16(after)[i]), 'the stored rows are not rounded to bf16');
  }
});

test('optimizer state is not pulled on a bf16 wire', async () => {
  await bf.pullWithState(3, keysOf(1, 2)).then(() => assert.unreachable('state pulled on bf16'), (e: Error) => assert.match(e.message, /on an f32 wire \(this client's rows travel as bf16\)/));
});

test('a pull asking for a format the server does not know is answered with an error naming it', async () => {
  const { conn } = await dial(c.servers[0]!.url, { nodeId: 'raw-format', secret: SECRET, role: Role.Worker, epoch: () => exact.view.epoch });
  const b = new flatbuffers.Builder(256);
  const k = W.Pull.createKeysVector(b, [1n]);
  const pull = W.Pull.createPull(b, 1, k, -1n, 0, false, 9 as W.RowFormat);
  const sender = b.createString('raw-format');
  W.Envelope.finishEnvelopeBuffer(b, W.Envelope.createEnvelope(b, 777n, false, sender, BigInt(exact.view.epoch), W.Body.Pull, pull));
  const reply = new Promise<ReturnType<typeof decode>>((resolve) => conn.ws.on('message', (d: Buffer) => { const e = decode(d); if (e.requestId === 777) resolve(e); }));
  conn.ws.send(b.asUint8Array());
  const e = await reply;
  assert.ok(e.body.type === 'error', `got ${e.body.type}`);
  if (e.body.type === 'error') {
    assert.is(e.body.code, ErrorCode.Malformed);
    assert.match(e.body.message, /pull asks for rows in format 9, which this peer does not know \(0 f32, 1 f16, 2 bf16\)/);
  }
  await conn.close();
});

test.after(async () => { await Promise.all([bf.close(), single.close()]); await c.close(); });
test.run();
