// Envelope <-> bytes. Encoding uses the generated FlatBuffers builders; payload vectors (keys,
// values) are bulk-copied into the builder instead of one add per element. Decoding verifies the
// frame's structure first (verify.ts), then reads through the generated accessors and returns
// zero-copy typed-array views of the payload vectors when they are aligned.
import * as flatbuffers from 'flatbuffers';
import * as W from './generated/hybridps/wire.ts';
import { verifyRoot, VerifyError, type TableSpec } from './verify.ts';
import { f16ToF32, f32ToF16 } from './f16.ts';

export { Role, Consistency, ErrorCode } from './generated/hybridps/wire.ts';
type Role = W.Role;
type ErrorCode = W.ErrorCode;

export interface MemberMsg { nodeId: string; role: Role; address: string; rank: number }
/** Rows of one (sender, seq) push, as a replica must remember them (see CopyPending). */
export interface AppliedPushMsg { sender: string; seq: number; keys: BigUint64Array }
export interface ClusterViewMsg {
  epoch: number; members: MemberMsg[]; vnodes: number; replicas: number;
  /** Epoch at which the worker set last changed (0 if never): names the allreduce ring. */
  workersEpoch?: number;
}
export interface TableSpecMsg {
  id: number; name: string; dim: number; init: string; initScale: number; seed: bigint;
  optimizer: string; hyper: Record<string, number>; consistency: W.Consistency; staleness: number;
}
export interface PullBody { type: 'pull'; table: number; keys: BigUint64Array; clock: number; worker: number; f16: boolean }
export interface PushBody {
  type: 'push'; table: number; keys: BigUint64Array; values: Float32Array;
  worker: number; clock: number; seq: number; f16?: boolean;
}
export interface AllreduceChunkBody {
  type: 'allreduceChunk'; opId: number; ringEpoch: number; step: number; segment: number;
  offset: number; values: Float32Array; f16?: boolean;
}
/** Values produced straight into the outgoing frame (saves a buffer and a copy on big replies). */
export interface ValuesWriter { length: number; write(dst: Float32Array): void }

export type Body =
  | { type: 'challenge'; nonce: Uint8Array }
  /** `ringEpoch`: set on a worker's link to its allreduce neighbour, the ring it serves. */
  | { type: 'hello'; role: Role; nodeId: string; address: string; mac: Uint8Array; ringEpoch?: number }
  | { type: 'welcome'; nodeId: string; view: ClusterViewMsg | null; heartbeatMs?: number }
  | { type: 'clusterView'; view: ClusterViewMsg }
  | { type: 'heartbeat'; nodeId: string; clock: number }
  | { type: 'leave'; nodeId: string }
  | { type: 'declareTables'; tables: TableSpecMsg[]; workers: number }
  | { type: 'declareTablesReply'; tables: TableSpecMsg[] }
  | PullBody
  | { type: 'pullReply'; table: number; dim: number; values: Float32Array; f16?: boolean; writer?: ValuesWriter }
  | PushBody
  | { type: 'pushAck'; seq: number; applied: boolean }
  | { type: 'clock'; worker: number; clock: number }
  | { type: 'clockAck'; clock: number }
  | { type: 'barrier'; name: string; worker: number; generation: number }
  | { type: 'barrierRelease'; name: string; generation: number }
  | { type: 'checkpoint'; dir: string; step: number }
  | { type: 'checkpointReply'; files: string[]; rows: number }
  | { type: 'restore'; dir: string }
  | { type: 'replicaPush'; push: PushBody; origin: string }
  | { type: 'copyRows'; table: number; keys: BigUint64Array; values: Float32Array; slots: Float32Array; slotCount: number; steps: Uint32Array }
  | AllreduceChunkBody
  | { type: 'statsRequest' }
  | { type: 'handoffRequest'; table: number; offset: number; limit: number }
  | { type: 'copyPending'; table: number; clock: number; keys: BigUint64Array; sums: Float64Array; applied: AppliedPushMsg[] }
  | { type: 'statsReply'; json: string }
  | { type: 'ok' }
  | { type: 'error'; code: ErrorCode; message: string };

export type BodyType = Body['type'];
export type BodyOf<T extends BodyType> = Extract<Body, { type: T }>;

export interface Envelope<B extends Body = Body> {
  requestId: number;
  reply: boolean;
  sender: string;
  epoch: number;
  body: B;
}

/** A frame that failed to parse or verify; the cause is in the message. */
export class WireError extends Error {
  constructor(message: string, readonly code: ErrorCode = W.ErrorCode.Malformed) { super(message); }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Appends a vector with one memcpy (the generated createXVector adds element by element). */
function bulkVector(b: flatbuffers.Builder, data: ArrayBufferView, elemSize: number): number {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  b.startVector(elemSize, bytes.length / elemSize, Math.max(elemSize, 4));
  const internal = b as unknown as { space: number; bb: flatbuffers.ByteBuffer };
  internal.space -= bytes.length;
  internal.bb.bytes().set(bytes, internal.space);
  return b.endVector();
}

function valuesVectors(b: flatbuffers.Builder, values: Float32Array, f16: boolean | undefined, writer?: ValuesWriter): [number, number] {
  if (writer && !f16) {
    // Reserve the vector in the builder and let the writer fill it in place.
    b.startVector(4, writer.length, 4);
    const internal = b as unknown as { space: number; bb: flatbuffers.ByteBuffer };
    internal.space -= writer.length * 4;
    const bytes = internal.bb.bytes();
    writer.write(new Float32Array(bytes.buffer, bytes.byteOffset + internal.space, writer.length));
    return [b.endVector(), 0];
  }
  if (writer) {
    values = new Float32Array(writer.length);
    writer.write(values);
  }
  return f16 ? [0, bulkVector(b, f32ToF16(values), 2)] : [bulkVector(b, values, 4), 0];
}

const big = (n: number): bigint => BigInt(n);

function encodeView(b: flatbuffers.Builder, v: ClusterViewMsg): number {
  const members = v.members.map((m) => {
    const id = b.createString(m.nodeId);
    const addr = b.createString(m.address);
    W.Member.startMember(b);
    W.Member.addNodeId(b, id);
    W.Member.addRole(b, m.role);
    W.Member.addAddress(b, addr);
    W.Member.addRank(b, m.rank);
    return W.Member.endMember(b);
  });
  const mv = W.ClusterView.createMembersVector(b, members);
  W.ClusterView.startClusterView(b);
  W.ClusterView.addEpoch(b, big(v.epoch));
  W.ClusterView.addMembers(b, mv);
  W.ClusterView.addVnodes(b, v.vnodes);
  W.ClusterView.addReplicas(b, v.replicas);
  W.ClusterView.addWorkersEpoch(b, big(v.workersEpoch ?? 0));
  return W.ClusterView.endClusterView(b);
}

function encodeTableSpecs(b: flatbuffers.Builder, specs: TableSpecMsg[]): number {
  const offs = specs.map((t) => {
    const name = b.createString(t.name);
    const init = b.createString(t.init);
    const opt = b.createString(t.optimizer);
    const hyper = W.TableSpec.createHyperVector(b, Object.entries(t.hyper).map(([k, v]) =>
      W.HyperParam.createHyperParam(b, b.createString(k), v)));
    W.TableSpec.startTableSpec(b);
    W.TableSpec.addId(b, t.id);
    W.TableSpec.addName(b, name);
    W.TableSpec.addDim(b, t.dim);
    W.TableSpec.addInit(b, init);
    W.TableSpec.addInitScale(b, t.initScale);
    W.TableSpec.addSeed(b, t.seed);
    W.TableSpec.addOptimizer(b, opt);
    W.TableSpec.addHyper(b, hyper);
    W.TableSpec.addConsistency(b, t.consistency);
    W.TableSpec.addStaleness(b, t.staleness);
    return W.TableSpec.endTableSpec(b);
  });
  return W.DeclareTables.createTablesVector(b, offs);
}

function encodePush(b: flatbuffers.Builder, p: PushBody): number {
  const keys = bulkVector(b, p.keys, 8);
  const [vals, vals16] = valuesVectors(b, p.values, p.f16);
  W.Push.startPush(b);
  W.Push.addTable(b, p.table);
  W.Push.addKeys(b, keys);
  if (vals) W.Push.addValues(b, vals);
  if (vals16) W.Push.addValuesF16(b, vals16);
  W.Push.addWorker(b, p.worker);
  W.Push.addClock(b, big(p.clock));
  W.Push.addSeq(b, big(p.seq));
  return W.Push.endPush(b);
}

function encodeBody(b: flatbuffers.Builder, body: Body): [W.Body, number] {
  switch (body.type) {
    case 'challenge':
      return [W.Body.Challenge, W.Challenge.createChallenge(b, bulkVector(b, body.nonce, 1))];
    case 'hello': {
      const id = b.createString(body.nodeId);
      const addr = b.createString(body.address);
      const mac = bulkVector(b, body.mac, 1);
      return [W.Body.Hello, W.Hello.createHello(b, body.role, id, addr, mac, body.ringEpoch === undefined ? null : big(body.ringEpoch))];
    }
    case 'welcome': {
      const id = b.createString(body.nodeId);
      const view = body.view ? encodeView(b, body.view) : 0;
      W.Welcome.startWelcome(b);
      W.Welcome.addNodeId(b, id);
      if (view) W.Welcome.addView(b, view);
      if (body.heartbeatMs) W.Welcome.addHeartbeatMs(b, body.heartbeatMs);
      return [W.Body.Welcome, W.Welcome.endWelcome(b)];
    }
    case 'clusterView':
      return [W.Body.ClusterView, encodeView(b, body.view)];
    case 'heartbeat':
      return [W.Body.Heartbeat, W.Heartbeat.createHeartbeat(b, b.createString(body.nodeId), big(body.clock))];
    case 'leave':
      return [W.Body.Leave, W.Leave.createLeave(b, b.createString(body.nodeId))];
    case 'declareTables':
      return [W.Body.DeclareTables, W.DeclareTables.createDeclareTables(b, encodeTableSpecs(b, body.tables), body.workers)];
    case 'declareTablesReply':
      return [W.Body.DeclareTablesReply, W.DeclareTablesReply.createDeclareTablesReply(b, encodeTableSpecs(b, body.tables))];
    case 'pull': {
      const keys = bulkVector(b, body.keys, 8);
      return [W.Body.Pull, W.Pull.createPull(b, body.table, keys, big(body.clock), body.worker, body.f16)];
    }
    case 'pullReply': {
      const [vals, vals16] = valuesVectors(b, body.values, body.f16, body.writer);
      return [W.Body.PullReply, W.PullReply.createPullReply(b, body.table, body.dim, vals, vals16)];
    }
    case 'push':
      return [W.Body.Push, encodePush(b, body)];
    case 'pushAck':
      return [W.Body.PushAck, W.PushAck.createPushAck(b, big(body.seq), body.applied)];
    case 'clock':
      return [W.Body.Clock, W.Clock.createClock(b, body.worker, big(body.clock))];
    case 'clockAck':
      return [W.Body.ClockAck, W.ClockAck.createClockAck(b, big(body.clock))];
    case 'barrier':
      return [W.Body.Barrier, W.Barrier.createBarrier(b, b.createString(body.name), body.worker, big(body.generation))];
    case 'barrierRelease':
      return [W.Body.BarrierRelease, W.BarrierRelease.createBarrierRelease(b, b.createString(body.name), big(body.generation))];
    case 'checkpoint':
      return [W.Body.Checkpoint, W.Checkpoint.createCheckpoint(b, b.createString(body.dir), big(body.step))];
    case 'checkpointReply': {
      const files = W.CheckpointReply.createFilesVector(b, body.files.map((f) => b.createString(f)));
      return [W.Body.CheckpointReply, W.CheckpointReply.createCheckpointReply(b, files, big(body.rows))];
    }
    case 'restore':
      return [W.Body.Restore, W.Restore.createRestore(b, b.createString(body.dir))];
    case 'replicaPush': {
      const push = encodePush(b, body.push);
      return [W.Body.ReplicaPush, W.ReplicaPush.createReplicaPush(b, push, b.createString(body.origin))];
    }
    case 'copyRows': {
      const keys = bulkVector(b, body.keys, 8);
      const vals = bulkVector(b, body.values, 4);
      const slots = bulkVector(b, body.slots, 4);
      const steps = bulkVector(b, body.steps, 4);
      return [W.Body.CopyRows, W.CopyRows.createCopyRows(b, body.table, keys, vals, slots, body.slotCount, steps)];
    }
    case 'allreduceChunk': {
      const [vals, vals16] = valuesVectors(b, body.values, body.f16);
      return [W.Body.AllreduceChunk, W.AllreduceChunk.createAllreduceChunk(
        b, big(body.opId), big(body.ringEpoch), body.step, body.segment, big(body.offset), vals, vals16)];
    }
    case 'copyPending': {
      const keys = bulkVector(b, body.keys, 8);
      const sums = bulkVector(b, body.sums, 8);
      const applied = W.CopyPending.createAppliedVector(b, body.applied.map((a) => {
        const sender = b.createString(a.sender);
        return W.AppliedPush.createAppliedPush(b, sender, big(a.seq), bulkVector(b, a.keys, 8));
      }));
      return [W.Body.CopyPending, W.CopyPending.createCopyPending(b, body.table, big(body.clock), keys, sums, applied)];
    }
    case 'handoffRequest':
      return [W.Body.HandoffRequest, W.HandoffRequest.createHandoffRequest(b, body.table, body.offset, body.limit)];
    case 'statsRequest':
      W.StatsRequest.startStatsRequest(b);
      return [W.Body.StatsRequest, W.StatsRequest.endStatsRequest(b)];
    case 'statsReply':
      return [W.Body.StatsReply, W.StatsReply.createStatsReply(b, b.createString(body.json))];
    case 'ok':
      W.Ok.startOk(b);
      return [W.Body.Ok, W.Ok.endOk(b)];
    case 'error':
      return [W.Body.Error, W.Error.createError(b, body.code, b.createString(body.message))];
  }
}

function payloadBytes(body: Body): number {
  switch (body.type) {
    case 'pull': return body.keys.byteLength;
    case 'push': return body.keys.byteLength + body.values.byteLength;
    case 'pullReply': return body.writer ? body.writer.length * 4 : body.values.byteLength;
    case 'allreduceChunk': return body.values.byteLength;
    case 'replicaPush': return body.push.keys.byteLength + body.push.values.byteLength;
    case 'copyPending': return body.keys.byteLength + body.sums.byteLength + body.applied.reduce((n, a) => n + a.keys.byteLength + 4 * a.sender.length + 64, 0);
    case 'copyRows': return body.keys.byteLength + body.values.byteLength + body.slots.byteLength + body.steps.byteLength;
    default: return 0;
  }
}

/**
 * Encodes one frame. With `builder` (reused across frames by a connection) the bytes live in the
 * builder's memory, already paged in, and stay valid until the builder is used again.
 */
export function encode(env: Envelope, builder?: flatbuffers.Builder): Uint8Array {
  // Size the builder up front so large payloads are copied once, not on every doubling.
  const need = payloadBytes(env.body) + 512;
  let b: flatbuffers.Builder;
  if (builder && builder.dataBuffer().capacity() >= need) { b = builder; b.clear(); } else b = new flatbuffers.Builder(need);
  const sender = b.createString(env.sender);
  const [type, off] = encodeBody(b, env.body);
  W.Envelope.startEnvelope(b);
  W.Envelope.addRequestId(b, big(env.requestId));
  W.Envelope.addReply(b, env.reply);
  W.Envelope.addSender(b, sender);
  W.Envelope.addEpoch(b, big(env.epoch));
  W.Envelope.addBodyType(b, type);
  W.Envelope.addBody(b, off);
  W.Envelope.finishEnvelopeBuffer(b, W.Envelope.endEnvelope(b));
  return b.asUint8Array();
}

// ---------------------------------------------------------------------------------------------
// Verification specs, in schema field order.

const s1 = { k: 'scalar', size: 1 } as const;
const s2 = { k: 'scalar', size: 2 } as const;
const s4 = { k: 'scalar', size: 4 } as const;
const s8 = { k: 'scalar', size: 8 } as const;
const str = { k: 'string' } as const;
const v1 = { k: 'vector', elem: 1 } as const;
const v2 = { k: 'vector', elem: 2 } as const;
const v4 = { k: 'vector', elem: 4 } as const;
const v8 = { k: 'vector', elem: 8 } as const;

const MemberSpec: TableSpec = [str, s1, str, s4];
const ViewSpec: TableSpec = [s8, { k: 'tables', spec: MemberSpec }, s4, s4];
const HyperSpec: TableSpec = [str, s8];
const TableSpecSpec: TableSpec = [s2, str, s4, str, s8, s8, str, { k: 'tables', spec: HyperSpec }, s1, s4];
const PushSpec: TableSpec = [s2, v8, v4, v2, s4, s8, s8];
// Strings inside a vector are tables-like offsets; verify them as single-field "tables" is wrong,
// so CheckpointReply's files vector is verified as a vector of offsets and each string below.
const BodySpecs: (TableSpec | undefined)[] = [];
BodySpecs[W.Body.Challenge] = [v1];
BodySpecs[W.Body.Hello] = [s1, str, str, v1, s8];
BodySpecs[W.Body.Welcome] = [str, { k: 'table', spec: ViewSpec }, s4];
BodySpecs[W.Body.ClusterView] = ViewSpec;
BodySpecs[W.Body.Heartbeat] = [str, s8];
BodySpecs[W.Body.Leave] = [str];
BodySpecs[W.Body.DeclareTables] = [{ k: 'tables', spec: TableSpecSpec }, s4];
BodySpecs[W.Body.DeclareTablesReply] = [{ k: 'tables', spec: TableSpecSpec }];
BodySpecs[W.Body.Pull] = [s2, v8, s8, s4, s1];
BodySpecs[W.Body.PullReply] = [s2, s4, v4, v2];
BodySpecs[W.Body.Push] = PushSpec;
BodySpecs[W.Body.PushAck] = [s8, s1];
BodySpecs[W.Body.Clock] = [s4, s8];
BodySpecs[W.Body.ClockAck] = [s8];
BodySpecs[W.Body.Barrier] = [str, s4, s8];
BodySpecs[W.Body.BarrierRelease] = [str, s8];
BodySpecs[W.Body.Checkpoint] = [str, s8];
BodySpecs[W.Body.CheckpointReply] = [v4, s8];
BodySpecs[W.Body.Restore] = [str];
BodySpecs[W.Body.ReplicaPush] = [{ k: 'table', spec: PushSpec }, str];
BodySpecs[W.Body.CopyRows] = [s2, v8, v4, v4, s4, v4];
BodySpecs[W.Body.AllreduceChunk] = [s8, s8, s4, s4, s8, v4, v2];
BodySpecs[W.Body.StatsRequest] = [];
BodySpecs[W.Body.HandoffRequest] = [s2, s4, s4];
BodySpecs[W.Body.CopyPending] = [s2, s8, v8, v8, { k: 'tables', spec: [str, s8, v8] }];
BodySpecs[W.Body.StatsReply] = [str];
BodySpecs[W.Body.Ok] = [];
BodySpecs[W.Body.Error] = [s2, str];
const EnvelopeSpec: TableSpec = [s8, s1, str, s8, { k: 'unionType' }, { k: 'union', specs: BodySpecs }];

// ---------------------------------------------------------------------------------------------
// Decoding

type VecCtor<T> = { new(buf: ArrayBuffer, off: number, len: number): T; BYTES_PER_ELEMENT: number };

/** Zero-copy view of a verified vector; copies when the peer's layout is misaligned. */
function vec<T extends ArrayBufferView>(bb: flatbuffers.ByteBuffer, table: flatbuffers.Table | { bb_pos: number }, slot: number, Ctor: VecCtor<T>): T {
  const pos = (table as { bb_pos: number }).bb_pos;
  const off = bb.__offset(pos, 4 + 2 * slot);
  const bytes = bb.bytes();
  if (!off) return new Ctor(new ArrayBuffer(0), 0, 0);
  const start = bb.__vector(pos + off);
  const len = bb.__vector_len(pos + off);
  const abs = bytes.byteOffset + start;
  if (abs % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer as ArrayBuffer, abs, len);
  const copy = bytes.slice(start, start + len * Ctor.BYTES_PER_ELEMENT);
  return new Ctor(copy.buffer, 0, len);
}

function values(bb: flatbuffers.ByteBuffer, t: { bb_pos: number }, slot32: number, slot16: number): { values: Float32Array; f16: boolean } {
  const v32 = vec(bb, t, slot32, Float32Array);
  if (v32.length) return { values: v32, f16: false };
  const v16 = vec(bb, t, slot16, Uint16Array);
  return v16.length ? { values: f16ToF32(v16), f16: true } : { values: v32, f16: false };
}

const num = (x: bigint): number => {
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError(`integer ${x} is out of range`);
  return Number(x);
};

function decodeView(bb: flatbuffers.ByteBuffer, v: W.ClusterView): ClusterViewMsg {
  const members: MemberMsg[] = [];
  for (let i = 0; i < v.membersLength(); i++) {
    const m = v.members(i)!;
    members.push({ nodeId: m.nodeId() ?? '', role: m.role(), address: m.address() ?? '', rank: m.rank() });
  }
  return { epoch: num(v.epoch()), members, vnodes: v.vnodes(), replicas: v.replicas(), workersEpoch: num(v.workersEpoch()) };
}

function decodeTableSpecs(n: number, get: (i: number) => W.TableSpec | null): TableSpecMsg[] {
  const out: TableSpecMsg[] = [];
  for (let i = 0; i < n; i++) {
    const t = get(i)!;
    const hyper: Record<string, number> = {};
    for (let j = 0; j < t.hyperLength(); j++) {
      const h = t.hyper(j)!;
      hyper[h.name() ?? ''] = h.value();
    }
    out.push({
      id: t.id(), name: t.name() ?? '', dim: t.dim(), init: t.init() ?? 'zeros', initScale: t.initScale(),
      seed: t.seed(), optimizer: t.optimizer() ?? 'sgd', hyper, consistency: t.consistency(), staleness: t.staleness(),
    });
  }
  return out;
}

function decodePush(bb: flatbuffers.ByteBuffer, p: W.Push): PushBody {
  const v = values(bb, p, 2, 3);
  return {
    type: 'push', table: p.table(), keys: vec(bb, p, 1, BigUint64Array), values: v.values, f16: v.f16,
    worker: p.worker(), clock: num(p.clock()), seq: num(p.seq()),
  };
}

function decodeBody(bb: flatbuffers.ByteBuffer, env: W.Envelope): Body {
  const t = env.bodyType();
  const get = <T>(ctor: new () => T): T => env.body(new ctor()) as T;
  switch (t) {
    case W.Body.Challenge: return { type: 'challenge', nonce: vec(bb, get(W.Challenge), 0, Uint8Array) };
    case W.Body.Hello: {
      const h = get(W.Hello);
      const ring = h.ringEpoch();
      const hello: BodyOf<'hello'> = { type: 'hello', role: h.role(), nodeId: h.nodeId() ?? '', address: h.address() ?? '', mac: vec(bb, h, 3, Uint8Array) };
      if (ring !== null) hello.ringEpoch = num(ring);
      return hello;
    }
    case W.Body.Welcome: {
      const w = get(W.Welcome);
      const v = w.view();
      return { type: 'welcome', nodeId: w.nodeId() ?? '', view: v ? decodeView(bb, v) : null, heartbeatMs: w.heartbeatMs() };
    }
    case W.Body.ClusterView: return { type: 'clusterView', view: decodeView(bb, get(W.ClusterView)) };
    case W.Body.Heartbeat: { const h = get(W.Heartbeat); return { type: 'heartbeat', nodeId: h.nodeId() ?? '', clock: num(h.clock()) }; }
    case W.Body.Leave: return { type: 'leave', nodeId: get(W.Leave).nodeId() ?? '' };
    case W.Body.DeclareTables: {
      const d = get(W.DeclareTables);
      return { type: 'declareTables', tables: decodeTableSpecs(d.tablesLength(), (i) => d.tables(i)), workers: d.workers() };
    }
    case W.Body.DeclareTablesReply: {
      const d = get(W.DeclareTablesReply);
      return { type: 'declareTablesReply', tables: decodeTableSpecs(d.tablesLength(), (i) => d.tables(i)) };
    }
    case W.Body.Pull: {
      const p = get(W.Pull);
      return { type: 'pull', table: p.table(), keys: vec(bb, p, 1, BigUint64Array), clock: num(p.clock()), worker: p.worker(), f16: p.f16() };
    }
    case W.Body.PullReply: {
      const p = get(W.PullReply);
      const v = values(bb, p, 2, 3);
      return { type: 'pullReply', table: p.table(), dim: p.dim(), values: v.values, f16: v.f16 };
    }
    case W.Body.Push: return decodePush(bb, get(W.Push));
    case W.Body.PushAck: { const a = get(W.PushAck); return { type: 'pushAck', seq: num(a.seq()), applied: a.applied() }; }
    case W.Body.Clock: { const c = get(W.Clock); return { type: 'clock', worker: c.worker(), clock: num(c.clock()) }; }
    case W.Body.ClockAck: return { type: 'clockAck', clock: num(get(W.ClockAck).clock()) };
    case W.Body.Barrier: { const x = get(W.Barrier); return { type: 'barrier', name: x.name() ?? '', worker: x.worker(), generation: num(x.generation()) }; }
    case W.Body.BarrierRelease: { const x = get(W.BarrierRelease); return { type: 'barrierRelease', name: x.name() ?? '', generation: num(x.generation()) }; }
    case W.Body.Checkpoint: { const c = get(W.Checkpoint); return { type: 'checkpoint', dir: c.dir() ?? '', step: num(c.step()) }; }
    case W.Body.CheckpointReply: {
      const c = get(W.CheckpointReply);
      const files: string[] = [];
      const dv = new DataView(bb.bytes().buffer, bb.bytes().byteOffset, bb.bytes().byteLength);
      const offs = vec(bb, c, 0, Uint32Array);
      const base = bb.__vector(c.bb_pos + bb.__offset(c.bb_pos, 4));
      for (let i = 0; i < offs.length; i++) {
        const at = base + 4 * i + dv.getUint32(base + 4 * i, true);
        if (at + 4 > dv.byteLength || at + 4 + dv.getUint32(at, true) > dv.byteLength) throw new WireError('checkpoint file name outside the frame');
        files.push(c.files(i) ?? '');
      }
      return { type: 'checkpointReply', files, rows: num(c.rows()) };
    }
    case W.Body.Restore: return { type: 'restore', dir: get(W.Restore).dir() ?? '' };
    case W.Body.ReplicaPush: {
      const r = get(W.ReplicaPush);
      const p = r.push();
      if (!p) throw new WireError('replica push without a push');
      return { type: 'replicaPush', push: decodePush(bb, p), origin: r.origin() ?? '' };
    }
    case W.Body.CopyRows: {
      const c = get(W.CopyRows);
      return {
        type: 'copyRows', table: c.table(), keys: vec(bb, c, 1, BigUint64Array), values: vec(bb, c, 2, Float32Array),
        slots: vec(bb, c, 3, Float32Array), slotCount: c.slotCount(), steps: vec(bb, c, 5, Uint32Array),
      };
    }
    case W.Body.AllreduceChunk: {
      const a = get(W.AllreduceChunk);
      const v = values(bb, a, 5, 6);
      return {
        type: 'allreduceChunk', opId: num(a.opId()), ringEpoch: num(a.ringEpoch()), step: a.step(), segment: a.segment(),
        offset: num(a.offset()), values: v.values, f16: v.f16,
      };
    }
    case W.Body.StatsRequest: return { type: 'statsRequest' };
    case W.Body.CopyPending: {
      const c = get(W.CopyPending);
      const applied: AppliedPushMsg[] = [];
      for (let j = 0; j < c.appliedLength(); j++) {
        const a = c.applied(j)!;
        applied.push({ sender: a.sender() ?? '', seq: num(a.seq()), keys: vec(bb, a, 2, BigUint64Array) });
      }
      return { type: 'copyPending', table: c.table(), clock: num(c.clock()), keys: vec(bb, c, 2, BigUint64Array), sums: vec(bb, c, 3, Float64Array), applied };
    }
    case W.Body.HandoffRequest: { const h = get(W.HandoffRequest); return { type: 'handoffRequest', table: h.table(), offset: h.offset(), limit: h.limit() }; }
    case W.Body.StatsReply: return { type: 'statsReply', json: get(W.StatsReply).json() ?? '' };
    case W.Body.Ok: return { type: 'ok' };
    case W.Body.Error: { const e = get(W.Error); return { type: 'error', code: e.code(), message: e.message() ?? '' }; }
    default: throw new WireError(`unknown body type ${t}`);
  }
}

/**
 * Parses one frame. Throws WireError naming the cause for anything malformed; never reads outside
 * `frame`. Payload vectors in the result may alias `frame` (zero-copy): copy them to keep them.
 */
export function decode(frame: Uint8Array): Envelope {
  // Align the frame so vector views are possible (ws hands out Buffers at arbitrary offsets).
  const bytes = frame.byteOffset % 8 === 0 ? frame : new Uint8Array(frame);
  try {
    verifyRoot(bytes, EnvelopeSpec);
    const bb = new flatbuffers.ByteBuffer(bytes);
    if (!W.Envelope.bufferHasIdentifier(bb)) throw new WireError('frame does not carry the HBPS identifier');
    const env = W.Envelope.getRootAsEnvelope(bb);
    return {
      requestId: num(env.requestId()), reply: env.reply(), sender: env.sender() ?? '', epoch: num(env.epoch()),
      body: decodeBody(bb, env),
    };
  } catch (e) {
    if (e instanceof WireError) throw e;
    if (e instanceof VerifyError) throw new WireError(`malformed frame: ${e.message}`);
    throw new WireError(`malformed frame: ${(e as Error).message}`);
  }
}
