// Hostile and broken input against a real server: every case gets an error naming the cause,
// no table changes, and the server keeps serving.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import WebSocket from 'ws';
import { startCluster, table, keysOf, SECRET } from './helpers/cluster.ts';
import { dial, RemoteError } from '../src/transport/index.ts';
import { encode, decode, ErrorCode, Role, type Body, type Envelope } from '../src/wire/codec.ts';
import type { RequestBody } from '../src/wire/replies.ts';

const c = await startCluster({ servers: 1, maxFrameBytes: 1 << 20 });
const client = await c.client('good');
await client.declareTables([table({ id: 1, dim: 4, init: 'uniform', initScale: 1, optimizer: 'sgd', hyper: { lr: 1 } })]);
const keys = keysOf(1, 2, 3);
const before = await client.pull(1, keys);
const server = c.servers[0]!;
const { conn } = await dial(server.url, { nodeId: 'raw', secret: SECRET, role: Role.Worker, epoch: () => client.view.epoch });

async function expectError(body: RequestBody, code: ErrorCode, pattern: RegExp): Promise<void> {
  try {
    await conn.request(body);
    assert.unreachable(`${body.type} should be refused`);
  } catch (e) {
    assert.instance(e, RemoteError);
    assert.is(ErrorCode[(e as RemoteError).code], ErrorCode[code], (e as Error).message);
    assert.match((e as Error).message, pattern);
  }
}

async function unchanged(): Promise<void> {
  assert.equal(Array.from(await client.pull(1, keys)), Array.from(before), 'table unchanged');
}

const push = (over: Partial<Extract<Body, { type: 'push' }>>): RequestBody =>
  ({ type: 'push', table: 1, keys, values: new Float32Array(12).fill(1), worker: 0, clock: 0, seq: Math.floor(Math.random() * 1e9), ...over });

test('unknown table', async () => {
  await expectError({ type: 'pull', table: 77, keys, clock: -1, worker: 0 }, ErrorCode.UnknownTable, /unknown table 77/);
  await expectError(push({ table: 77 }), ErrorCode.UnknownTable, /unknown table/);
  await unchanged();
});

test('wrong row width and key/value count mismatch', async () => {
  await expectError(push({ values: new Float32Array(11) }), ErrorCode.BadDimension, /length|dim/i);
  await expectError(push({ values: new Float32Array(16) }), ErrorCode.BadDimension, /length|dim/i);
  await unchanged();
});

test('NaN and Inf in a push', async () => {
  const v = new Float32Array(12).fill(1); v[7] = NaN;
  await expectError(push({ values: v }), ErrorCode.NonFinite, /finite|NaN/i);
  const w = new Float32Array(12).fill(1); w[0] = -Infinity;
  await expectError(push({ values: w }), ErrorCode.NonFinite, /finite|Inf/i);
  await unchanged();
});

test('duplicate keys and keys beyond 48 bits', async () => {
  await expectError(push({ keys: keysOf(1, 1, 2) }), ErrorCode.Malformed, /duplicate/i);
  await expectError({ type: 'pull', table: 1, keys: BigUint64Array.of(2n ** 50n), clock: -1, worker: 0 }, ErrorCode.Malformed, /2\^48/);
  await unchanged();
});

test('copyRows and handoff requests from a worker: refused or checked, nothing changes', async () => {
  // Only servers take part in a handoff.
  await expectError({ type: 'handoffRequest', table: 0xffff, offset: 0, limit: 0 }, ErrorCode.Unsupported, /not a server/);
  await expectError({ type: 'handoffRequest', table: 1, offset: 0, limit: 10 }, ErrorCode.Unsupported, /not a server/);
  await expectError({ type: 'copyPending', table: 1, clock: 5, keys, sums: new Float64Array(12), applied: [] }, ErrorCode.Unsupported, /not a server/);
  const copy = (over: Partial<Extract<Body, { type: 'copyRows' }>>): RequestBody => ({
    type: 'copyRows', table: 1, keys, values: new Float32Array(12), slots: new Float32Array(0), slotCount: 0, steps: new Uint32Array(0), ...over,
  });
  await expectError(copy({}), ErrorCode.Unsupported, /copyRows from raw, which is not a server/);
  // From a server of the view, a copy is checked completely before any row changes.
  const peer = (await dial(server.url, { nodeId: 'server-0', secret: SECRET, role: Role.Server, epoch: () => client.view.epoch })).conn;
  const fromServer = async (body: RequestBody, code: ErrorCode, pattern: RegExp) => {
    const e = await peer.request(body).then(() => null, (err: Error) => err);
    assert.instance(e, RemoteError, `${body.type} should be refused`);
    assert.is(ErrorCode[(e as RemoteError).code], ErrorCode[code], (e as Error).message);
    assert.match((e as Error).message, pattern);
  };
  await fromServer(copy({ values: new Float32Array(11) }), ErrorCode.BadDimension, /do not match/);
  await fromServer(copy({ values: new Float32Array(12).fill(NaN) }), ErrorCode.NonFinite, /not finite/);
  await fromServer(copy({ keys: BigUint64Array.of(2n ** 50n, 1n, 2n) }), ErrorCode.Malformed, /2\^48/);
  await fromServer(copy({ table: 9 }), ErrorCode.UnknownTable, /unknown table 9/);
  await peer.close();
  await unchanged();
});

test('malformed and truncated frames get an error reply, the link stays usable', async () => {
  const replies: Envelope[] = [];
  const errs = new Promise<void>((resolve) => {
    conn.ws.on('message', (d: Buffer) => { const e = decode(d); if (e.requestId === 0 && e.body.type === 'error') { replies.push(e); if (replies.length === 3) resolve(); } });
  });
  const good = encode({ requestId: 99, reply: false, sender: 'raw', epoch: 1, body: push({}) });
  conn.ws.send(good.subarray(0, 40));
  conn.ws.send(Buffer.from('not a flatbuffer at all'));
  conn.ws.send('text frame');
  await errs;
  for (const r of replies) assert.ok(r.body.type === 'error' && r.body.code === ErrorCode.Malformed && r.body.message.length > 0);
  await unchanged();
});

test('a frame over the size limit is refused before parsing and the server keeps serving', async () => {
  const big = await dial(server.url, { nodeId: 'big', secret: SECRET, role: Role.Worker });
  const bigKeys = BigUint64Array.from({ length: 70_000 }, (_, i) => BigInt(i));
  const req = big.conn.request({ type: 'push', table: 1, keys: bigKeys, values: new Float32Array(70_000 * 4), worker: 0, clock: 0, seq: 1 });
  const err = await req.then(() => null, (e: Error) => e);
  assert.ok(err, 'oversized push must fail');
  const closed = await big.conn.closed;
  assert.is(closed.code, 1009, `closed with 1009 (message too big), got ${closed.code} ${closed.reason}`);
  await unchanged();
});

test('unauthenticated peers are refused before any other message is read', async () => {
  // Wrong secret.
  const wrong = await dial(server.url, { nodeId: 'evil', secret: new TextEncoder().encode('wrong-secret-0123456789'), role: Role.Worker }).then(() => null, (e: Error) => e);
  assert.match(String(wrong?.message), /HMAC|credentials|Unauthenticated/);
  // No hello at all: a push as the first frame.
  const ws = new WebSocket(server.url, { perMessageDeflate: false });
  const got: Envelope[] = [];
  ws.on('message', (d: Buffer) => got.push(decode(d)));
  await new Promise((r) => ws.once('open', r));
  ws.send(encode({ requestId: 5, reply: false, sender: 'evil', epoch: 1, body: push({ values: new Float32Array(12).fill(100) }) }));
  const code = await new Promise<number>((r) => ws.once('close', (c2) => r(c2)));
  assert.is(code, 4001);
  assert.ok(got.some((e) => e.body.type === 'error' && e.body.code === ErrorCode.Unauthenticated));
  await unchanged();
});

test('optimizer state asked for on an fp16 or bf16 wire is refused (it travels only as f32)', async () => {
  for (const format of ['f16', 'bf16'] as const) {
    await expectError({ type: 'pullBatch', parts: [{ table: 1, keys, state: true }], clock: -1, worker: 0, format }, ErrorCode.Malformed, new RegExp(`optimizer state with ${format} rows.*with format f32`));
  }
  await unchanged();
});

test.after(async () => { await conn.close(); await c.close(); });
test.run();
