// The wire contract: every body round-trips (row payloads as f32, fp16 and bf16), payloads are
// zero-copy views, fp16 stays within its bound (bf16: test/wire-bf16.test.ts), damaged frames are refused with a WireError (never another exception), and the
// generated code matches fbs/. A frame encoded with a hole for its values, sent as the frame's
// bytes around the hole and the values' chunks, is byte for byte the frame encoded whole.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { encode, encodeWithHole, decode, WireError, Role, Consistency, ErrorCode, type Body } from '../src/wire/codec.ts';
import * as flatbuffers from 'flatbuffers';
import { f32ToF16, f16ToF32, F16_RELATIVE_ERROR } from '../src/wire/f16.ts';
import { roundToWire } from '../src/wire/row-format.ts';
import { randomFloats } from './helpers/random.ts';
import { encodeMisaligned, frameAt, vectorOffset } from './helpers/hostile-frames.ts';

const keys = BigUint64Array.from([0n, 1n, 2n ** 48n - 1n, 123456789n]);
const vals = randomFloats(keys.length * 3, 5);
const view = { epoch: 9, vnodes: 32, replicas: 2, workersEpoch: 8, members: [{ nodeId: 's0', role: Role.Server, address: 'ws://127.0.0.1:1', rank: 0 }, { nodeId: 'w0', role: Role.Worker, address: '', rank: 3 }] };
const spec = { id: 3, name: 'emb', dim: 3, init: 'normal', initScale: 0.5, seed: 2n ** 63n + 5n, optimizer: 'adam', hyper: { lr: 0.01, beta1: 0.9 }, consistency: Consistency.SSP, staleness: 4 };
const push = { type: 'push', table: 3, keys, values: vals, worker: 2, clock: 11, seq: 99 } as const;
// Values a 2-byte format carries exactly, so their bodies round-trip to the same values.
const vals16 = roundToWire(vals.slice(), 'f16'), valsBf16 = roundToWire(vals.slice(), 'bf16');

const bodies: Body[] = [
  { type: 'challenge', nonce: new Uint8Array([1, 2, 3]) },
  { type: 'hello', role: Role.Worker, nodeId: 'w0', address: 'ws://x', mac: new Uint8Array(32).fill(7) },
  { type: 'hello', role: Role.Worker, nodeId: 'w0', address: 'ws://x', mac: new Uint8Array(32).fill(7), ringEpoch: 12 },
  { type: 'welcome', nodeId: 'scheduler', view, heartbeatMs: 250 },
  { type: 'clusterView', view },
  { type: 'heartbeat', nodeId: 'w0', clock: 12 },
  { type: 'leave', nodeId: 'w0' },
  { type: 'declareTables', tables: [spec], workers: 4 },
  { type: 'declareTablesReply', tables: [spec] },
  { type: 'pull', table: 3, keys, clock: 4, worker: 1, format: 'f16' },
  { type: 'pull', table: 3, keys, clock: 4, worker: 1, format: 'bf16' },
  { type: 'pullReply', table: 3, dim: 3, values: vals, fresh: 6 },
  { type: 'pullReply', table: 3, dim: 3, values: vals16, format: 'f16', fresh: 6 },
  { type: 'pullReply', table: 3, dim: 3, values: valsBf16, format: 'bf16', fresh: 6 },
  push,
  { ...push, values: valsBf16, format: 'bf16' },
  { type: 'pushAck', seq: 99, applied: true },
  { type: 'clock', worker: 2, clock: 12 },
  { type: 'clockAck', clock: 12 },
  { type: 'barrier', name: 'start', worker: 1, generation: 3 },
  { type: 'barrierRelease', name: 'start', generation: 3 },
  { type: 'checkpoint', dir: '/tmp/ckpt', step: 100 },
  { type: 'checkpointReply', files: ['a.safetensors', 'b.safetensors'], rows: 1000 },
  { type: 'restore', dir: '/tmp/ckpt' },
  { type: 'replicaPush', push, origin: 'server-1' },
  { type: 'copyRows', table: 3, keys, values: vals, slots: randomFloats(24, 2), slotCount: 2, steps: new Uint32Array([1, 2, 3, 4]) },
  { type: 'allreduceChunk', opId: 5, ringEpoch: 2, step: 3, segment: 1, offset: 4096, values: vals, f16: false },
  { type: 'statsRequest' },
  { type: 'handoffRequest', table: 65535, offset: 4096, limit: 1024 },
  { type: 'copyPending', table: 3, clock: 12, keys: BigUint64Array.of(5n, 2n ** 47n), sums: Float64Array.of(0.1, -2.5e-300, 1e300, 7), applied: [{ sender: 'w1', seq: 2 ** 40, keys: BigUint64Array.of(5n, 2n ** 47n) }, { sender: 'w0', seq: 0, keys: new BigUint64Array(0) }] },
  { type: 'handoffMetaRequest', retry: false },
  { type: 'handoffMetaRequest', retry: true },
  {
    type: 'handoffMeta',
    tables: [
      {
        spec, rows: 70_000,
        applied: [{ sender: 'w1', seq: 2 ** 40, keys: BigUint64Array.of(5n, 2n ** 48n - 1n) }],
        pending: [{ table: 3, clock: 12, keys: BigUint64Array.of(5n), sums: Float64Array.of(0.1, -2.5e-300, 1e300), applied: [] }],
      },
      { spec: { ...spec, id: 4, name: 'empty', seed: 2n ** 64n - 1n }, rows: 0, applied: [], pending: [] },
    ],
    clocks: [{ rank: 0, clock: 12 }, { rank: 3, clock: 2 ** 40 }],
    wholePushes: [{ sender: 'w0', seqs: [1, 2, 2 ** 50] }, { sender: 'w2', seqs: [] }],
  },
  { type: 'assignRows', table: 3, keys, values: vals },
  { type: 'assignRows', table: 3, keys, values: vals, state: { slots: randomFloats(24, 3), slotCount: 2, steps: new Uint32Array([0, 7, 2 ** 32 - 1, 1]) } },
  { type: 'readRows', table: 3, keys },
  { type: 'pullBatch', parts: [{ table: 3, keys }, { table: 7, keys: BigUint64Array.of(9n) }, { table: 1, keys: new BigUint64Array(0) }], clock: 4, worker: 1 },
  { type: 'pullBatch', parts: [{ table: 3, keys }], clock: 4, worker: 1, format: 'bf16' },
  { type: 'pullBatchReply', offsets: Uint32Array.of(0, 12), dims: Uint32Array.of(3, 2), values: vals.subarray(0, 14), fresh: 3 },
  { type: 'pullBatchReply', offsets: Uint32Array.of(0, 12), dims: Uint32Array.of(3, 2), values: valsBf16.subarray(0, 14), format: 'bf16', fresh: 3 },
  { type: 'pullBatch', parts: [{ table: 3, keys, state: true }, { table: 7, keys: BigUint64Array.of(9n) }], clock: 4, worker: 1 },
  { type: 'pullBatchReply', offsets: Uint32Array.of(0, 8), dims: Uint32Array.of(1, 1), values: vals.subarray(0, 9), fresh: 3, stateWidths: Uint32Array.of(1, 0) },
  { type: 'pushBatch', parts: [{ table: 3, keys, seq: 99, offset: 0 }, { table: 7, keys: BigUint64Array.of(9n), seq: 2 ** 40, offset: 12 }], values: vals, worker: 2, clock: 11 },
  { type: 'pushBatch', parts: [{ table: 3, keys, seq: 99, offset: 0 }], values: vals16, worker: 2, clock: 11, format: 'f16' },
  { type: 'pushBatch', parts: [{ table: 3, keys, seq: 99, offset: 0 }], values: valsBf16, worker: 2, clock: 11, format: 'bf16' },
  { type: 'pushBatchAck', acks: [{ seq: 99, applied: true }, { seq: 2 ** 40, applied: false }] },
  { type: 'statsReply', json: '{"a":1}' },
  { type: 'ok' },
  { type: 'error', code: ErrorCode.NonFinite, message: 'NaN at row 3' },
];

test('every body type round-trips', () => {
  for (const body of bodies) {
    const env = { requestId: 42, reply: body.type.endsWith('Reply'), sender: 'me', epoch: 7, body };
    const back = decode(encode(env));
    assert.equal({ ...back, body: normal(back.body) }, { ...env, body: normal(body) }, body.type);
  }
});

function normal(b: Body): unknown {
  return JSON.parse(JSON.stringify(b, (_k, v) => (typeof v === 'bigint' ? v.toString() : ArrayBuffer.isView(v) ? Array.from(v as unknown as number[], String) : v),
  ), (k, v) => ((k === 'f16' && v === false) || (k === 'format' && v === 'f32') ? undefined : v)); // the defaults, which decode spells out
}

test('the hello carries the ring epoch in its own field (0 included), absent when not given', () => {
  const hello = (ringEpoch?: number): Body => ({ type: 'hello', role: Role.Worker, nodeId: 'w1', address: 'ws://127.0.0.1:9', mac: new Uint8Array(32), ringEpoch });
  const back = (b: Body) => decode(encode({ requestId: 1, reply: false, sender: 'w1', epoch: 3, body: b })).body;
  for (const epoch of [0, 1, 7, 2 ** 40]) {
    const got = back(hello(epoch));
    assert.is(got.type === 'hello' && got.ringEpoch, epoch, `ring epoch ${epoch}`);
    assert.is(got.type === 'hello' && got.address, 'ws://127.0.0.1:9', 'the address is the plain URL');
  }
  const none = back(hello());
  assert.ok(none.type === 'hello' && !('ringEpoch' in none), 'no ring epoch on an ordinary link');
});

test('a pull reply without freshness (an older server) decodes as -1: unknown, not cacheable', () => {
  const back = (body: Body) => decode(encode({ requestId: 1, reply: true, sender: 's', epoch: 1, body })).body;
  const one = back({ type: 'pullReply', table: 3, dim: 3, values: vals });
  assert.ok(one.type === 'pullReply' && one.fresh === -1);
  const batch = back({ type: 'pullBatchReply', offsets: Uint32Array.of(0), dims: Uint32Array.of(3), values: vals });
  assert.ok(batch.type === 'pullBatchReply' && batch.fresh === -1);
  const fresh = back({ type: 'pullReply', table: 3, dim: 3, values: vals, fresh: 41 });
  assert.ok(fresh.type === 'pullReply' && fresh.fresh === 41);
});

test('payload vectors are zero-copy views of an aligned frame', () => {
  const bytes = encode({ requestId: 1, reply: false, sender: 'w', epoch: 1, body: push });
  const env = decode(bytes);
  assert.is(env.body.type, 'push');
  if (env.body.type !== 'push') return;
  assert.is(env.body.values.buffer, bytes.buffer, 'values alias the frame');
  assert.is(env.body.keys.buffer, bytes.buffer, 'keys alias the frame');
  // A frame at an odd offset (as ws may hand out) still decodes, via one copy.
  const odd = new Uint8Array(bytes.length + 1);
  odd.set(bytes, 1);
  const env2 = decode(odd.subarray(1));
  assert.equal(Array.from((env2.body as typeof push).values), Array.from(vals));
});

test('every body decodes to what was encoded, at every frame offset and vector alignment (0-7 mod 8)', () => {
  for (const body of bodies) {
    const env = { requestId: 42, reply: false, sender: 'me', epoch: 7, body };
    for (let k = 0; k < 8; k++) {
      const frame = encodeMisaligned(env, k);
      for (let at = 0; at < 8; at++) {
        // Around the frame lie 0xff bytes: a vector read from anywhere but its own bytes differs.
        const back = decode(frameAt(frame, at));
        assert.equal(normal(back.body), normal(body), `${body.type}, vectors shifted by ${k}, frame at offset ${at}`);
      }
    }
  }
  // The shifted builder really puts vectors at every residue: pull keys at 0..7 mod 8 of the frame.
  const pull = bodies.find((b) => b.type === 'pull')!;
  const residues = new Set(Array.from({ length: 8 }, (_, k) => vectorOffset(encodeMisaligned({ requestId: 1, reply: false, sender: 'me', epoch: 1, body: pull }, k), 1) % 8));
  assert.is(residues.size, 8, `pull keys at residues ${[...residues]}`);
});

test('fp16 values stay within the documented relative error', () => {
  const x = randomFloats(100_000, 9).map((v, i) => v * 10 ** ((i % 8) - 3));
  const y = f16ToF32(f32ToF16(x));
  for (let i = 0; i < x.length; i++) {
    if (Math.abs(x[i]!) < 6.2e-5) { assert.ok(Math.abs(y[i]! - x[i]!) <= 2 ** -25, `subnormal ${x[i]}`); continue; }
    assert.ok(Math.abs(y[i]! - x[i]!) <= F16_RELATIVE_ERROR * Math.abs(x[i]!), `${x[i]} -> ${y[i]}`);
  }
  assert.equal(Array.from(f16ToF32(f32ToF16(new Float32Array([Infinity, -Infinity, 1e6, 0])))), [Infinity, -Infinity, Infinity, 0]);
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(new Float32Array([NaN])))[0]));
  const env = decode(encode({ requestId: 1, reply: true, sender: 's', epoch: 1, body: { type: 'pullReply', table: 1, dim: 3, values: vals, format: 'f16' } }));
  assert.ok(env.body.type === 'pullReply' && env.body.format === 'f16' && env.body.values.length === vals.length);
});

test('truncated, bit-flipped and random frames are refused with WireError only', () => {
  let seed = 77;
  const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
  const frames = bodies.map((body) => encode({ requestId: 3, reply: false, sender: 'x', epoch: 1, body }));
  let refused = 0, accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const f = frames[i % frames.length]!;
    let m: Uint8Array;
    const kind = i % 4;
    if (kind === 0) m = f.slice(0, Math.floor(rnd() * f.length));
    else if (kind === 1) { m = f.slice(); for (let j = 0; j < 1 + (i % 5); j++) m[Math.floor(rnd() * m.length)] ^= 1 << Math.floor(rnd() * 8); }
    else if (kind === 2) m = Uint8Array.from({ length: Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256));
    else { m = f.slice(); new DataView(m.buffer).setUint32(Math.floor(rnd() * (m.length / 4)) * 4, Math.floor(rnd() * 2 ** 32), true); }
    try { decode(m); accepted++; } catch (e) {
      assert.instance(e, WireError, `frame ${i} threw ${(e as Error)?.constructor?.name}: ${(e as Error).message}`);
      refused++;
    }
  }
  assert.ok(refused > 10_000, `refused ${refused}, accepted ${accepted}`);
});

test('generated FlatBuffers code matches fbs/ (npm run gen:fbs)', () => {
  const out = execFileSync(process.execPath, ['scripts/gen-fbs.mjs', '--check'], { encoding: 'utf8' });
  assert.match(out, /up to date/);
});

test('a pushBatch encoded with a hole, sent as prefix + chunks + suffix, is byte for byte the whole frame', () => {
  for (const sizes of [[3], [1, 2, 5], [0, 7, 0, 4096], [64 * 1850, 64 * 1849, 17]]) {
    const chunks = sizes.map((n, i) => randomFloats(n, 100 + i));
    const length = sizes.reduce((a, n) => a + n, 0);
    let at = 0;
    const parts = sizes.map((n, i) => { const offset = at; at += n; return { table: i + 1, keys: BigUint64Array.from({ length: Math.ceil(n / 64) }, (_, k) => BigInt(k * 3 + i)), seq: i, offset }; });
    const write = (dst: Float32Array) => { let o = 0; for (const c of chunks) { dst.set(c, o); o += c.length; } };
    const body = (withChunks: boolean) => ({ type: 'pushBatch' as const, parts, values: new Float32Array(0), worker: 1, clock: 4, writer: { length, write, ...(withChunks ? { chunks } : {}) } });
    const env = (b: ReturnType<typeof body>) => ({ requestId: 5, reply: false, sender: 'w0', epoch: 2, body: b });
    const whole = encode(env(body(false))).slice();
    for (const builder of [undefined, new flatbuffers.Builder(16), new flatbuffers.Builder(length * 4 + 4096)]) {
      const { bytes, hole } = encodeWithHole(env(body(true)), builder);
      assert.ok(hole, `sizes ${sizes}: a hole`);
      assert.is(hole!.bytes, length * 4);
      const sent = Buffer.concat([bytes.subarray(0, hole!.at), ...hole!.chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)), bytes.subarray(hole!.at + hole!.bytes)]);
      assert.ok(sent.equals(whole), `sizes ${sizes}: the frame sent equals the frame encoded whole`);
      const got = decode(sent).body as { values: Float32Array };
      assert.equal(Array.from(got.values), chunks.flatMap((c) => Array.from(c)));
    }
    // Chunks that do not add up to the writer's length: no hole, the writer fills the frame.
    const short = { ...body(true), writer: { length, write, chunks: chunks.slice(1) } };
    const r = encodeWithHole(env(short));
    assert.is(r.hole, sizes[0] === 0 ? r.hole : null);
    if (sizes[0] !== 0) assert.ok(Buffer.from(r.bytes).equals(whole), 'filled as encode() fills it');
  }
});

test.run();
