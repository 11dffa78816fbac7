// Bytes -> Envelope. The frame's structure is verified first (verify.ts: bounds, and a budget of
// the frame's own length, so aliased offsets cannot make a small frame cost more than its size);
// then the generated accessors read it, and payload vectors come back as zero-copy typed-array
// views where aligned, or as copies of exactly their verified bytes where not.
import * as flatbuffers from 'flatbuffers';
import * as W from './generated/hybridps/wire.ts';
import { verifyRoot, type TableSpec } from './verify.ts';
import { fromWireRowFormat, widenValues, type RowFormat } from './row-format.ts';
import {
  WireError, type AppliedPushMsg, type Body, type BodyOf, type ClusterViewMsg, type Envelope, type HandoffTableMsg, type MemberMsg,
  type PendingSumsMsg, type PushBody, type SenderPushesMsg, type TableSpecMsg, type WorkerClockMsg,
} from './messages.ts';

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
const PushSpec: TableSpec = [s2, v8, v4, v2, s4, s8, s8, v2];
const AppliedPushSpec: TableSpec = [str, s8, v8];
const CopyPendingSpec: TableSpec = [s2, s8, v8, v8, { k: 'tables', spec: AppliedPushSpec }];
const HandoffTableSpec: TableSpec = [{ k: 'table', spec: TableSpecSpec }, s4, { k: 'tables', spec: AppliedPushSpec }, { k: 'tables', spec: CopyPendingSpec }];
const BodySpecs: (TableSpec | undefined)[] = [];
BodySpecs[W.Body.Challenge] = [v1];
BodySpecs[W.Body.Hello] = [s1, str, str, v1, s8];
BodySpecs[W.Body.Welcome] = [str, { k: 'table', spec: ViewSpec }, s4];
BodySpecs[W.Body.ClusterView] = ViewSpec;
BodySpecs[W.Body.Heartbeat] = [str, s8];
BodySpecs[W.Body.Leave] = [str];
BodySpecs[W.Body.DeclareTables] = [{ k: 'tables', spec: TableSpecSpec }, s4];
BodySpecs[W.Body.DeclareTablesReply] = [{ k: 'tables', spec: TableSpecSpec }];
BodySpecs[W.Body.Pull] = [s2, v8, s8, s4, s1, s1];
BodySpecs[W.Body.PullReply] = [s2, s4, v4, v2, s8, v2];
BodySpecs[W.Body.Push] = PushSpec;
BodySpecs[W.Body.PushAck] = [s8, s1];
BodySpecs[W.Body.Clock] = [s4, s8];
BodySpecs[W.Body.ClockAck] = [s8];
BodySpecs[W.Body.Barrier] = [str, s4, s8];
BodySpecs[W.Body.BarrierRelease] = [str, s8];
BodySpecs[W.Body.Checkpoint] = [str, s8];
BodySpecs[W.Body.CheckpointReply] = [{ k: 'strings' }, s8];
BodySpecs[W.Body.Restore] = [str];
BodySpecs[W.Body.ReplicaPush] = [{ k: 'table', spec: PushSpec }, str];
BodySpecs[W.Body.CopyRows] = [s2, v8, v4, v4, s4, v4];
BodySpecs[W.Body.AllreduceChunk] = [s8, s8, s4, s4, s8, v4, v2];
BodySpecs[W.Body.StatsRequest] = [];
BodySpecs[W.Body.HandoffRequest] = [s2, s4, s4];
BodySpecs[W.Body.CopyPending] = CopyPendingSpec;
BodySpecs[W.Body.HandoffMetaRequest] = [s1];
BodySpecs[W.Body.HandoffMeta] = [{ k: 'tables', spec: HandoffTableSpec }, { k: 'tables', spec: [s4, s8] }, { k: 'tables', spec: [str, v8] }];
BodySpecs[W.Body.AssignRows] = [s2, v8, v4, s1, v4, s4, v4];
BodySpecs[W.Body.ReadRows] = [s2, v8];
BodySpecs[W.Body.PullBatch] = [{ k: 'tables', spec: [s2, v8, s1] }, s8, s4, s1, s1];
BodySpecs[W.Body.PullBatchReply] = [v4, v4, v4, v2, s8, v4, v2];
BodySpecs[W.Body.PushBatch] = [{ k: 'tables', spec: [s2, v8, s8, s4] }, v4, v2, s4, s8, v2];
BodySpecs[W.Body.PushBatchAck] = [{ k: 'tables', spec: [s8, s1] }];
BodySpecs[W.Body.StatsReply] = [str];
BodySpecs[W.Body.Ok] = [];
BodySpecs[W.Body.Error] = [s2, str];
const EnvelopeSpec: TableSpec = [s8, s1, str, s8, { k: 'unionType' }, { k: 'union', specs: BodySpecs }];

// ---------------------------------------------------------------------------------------------
// Decoding

type VecCtor<T> = { new(buf: ArrayBuffer, off: number, len: number): T; BYTES_PER_ELEMENT: number };

/**
 * A verified vector: a zero-copy view of the frame where its absolute address is aligned for
 * `Ctor`, else a copy of exactly its bytes (a peer, or ws's framing, may place it anywhere).
 */
function vec<T extends ArrayBufferView>(bb: flatbuffers.ByteBuffer, table: flatbuffers.Table | { bb_pos: number }, slot: number, Ctor: VecCtor<T>): T {
  const pos = (table as { bb_pos: number }).bb_pos;
  const off = bb.__offset(pos, 4 + 2 * slot);
  if (!off) return new Ctor(new ArrayBuffer(0), 0, 0);
  const bytes = bb.bytes();
  const start = bb.__vector(pos + off);
  const len = bb.__vector_len(pos + off);
  const abs = bytes.byteOffset + start;
  if (abs % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer as ArrayBuffer, abs, len);
  // Not bytes.slice(): on a Buffer that is a view, not a copy.
  const copy = new Uint8Array(len * Ctor.BYTES_PER_ELEMENT);
  copy.set(bytes.subarray(start, start + copy.length));
  return new Ctor(copy.buffer, 0, len);
}

/**
 * A row payload: whichever of its values vectors (f32 at slot32, fp16 at slot16, bf16 at
 * slotBf16) is filled, widened to f32; two filled at once are refused.
 */
function values(bb: flatbuffers.ByteBuffer, t: { bb_pos: number }, slot32: number, slot16: number, slotBf16?: number): { values: Float32Array; format: RowFormat } {
  const v32 = vec(bb, t, slot32, Float32Array);
  const v16 = vec(bb, t, slot16, Uint16Array);
  const vb = slotBf16 === undefined ? v16.subarray(0, 0) : vec(bb, t, slotBf16, Uint16Array);
  if ((v32.length ? 1 : 0) + (v16.length ? 1 : 0) + (vb.length ? 1 : 0) > 1) {
    throw new WireError(`row values in more than one format (f32 ${v32.length}, f16 ${v16.length}, bf16 ${vb.length} values); a frame carries one`);
  }
  if (v16.length) return { values: widenValues(v16, 'f16'), format: 'f16' };
  if (vb.length) return { values: widenValues(vb, 'bf16'), format: 'bf16' };
  return { values: v32, format: 'f32' };
}

/** The reply format a Pull / PullBatch asks for; a value this build does not know is refused. */
function askedFormat(what: string, p: { format(): number; f16(): boolean }): RowFormat {
  const f = fromWireRowFormat(p.format(), p.f16());
  if (f === undefined) throw new WireError(`${what} asks for rows in format ${p.format()}, which this peer does not know (0 f32, 1 f16, 2 bf16): upgrade it, or ask for f32`);
  return f;
}

const num = (x: bigint): number => {
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError(`integer ${x} is out of range`);
  return Number(x);
};

function decodeView(bb: flatbuffers.ByteBuffer, v: W.ClusterView): ClusterViewMsg {
  const members: MemberMsg[] = [];
  for (let i = 0; i < v.membersLength(); i++) {
    const m = v.members(i)!;
    const since = num(m.since());
    members.push({ nodeId: m.nodeId() ?? '', role: m.role(), address: m.address() ?? '', rank: m.rank(), ...(since ? { since } : {}) });
  }
  return { epoch: num(v.epoch()), members, vnodes: v.vnodes(), replicas: v.replicas(), workersEpoch: num(v.workersEpoch()), ...(v.jobEnded() ? { jobEnded: true } : {}) };
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

function decodeAppliedPushes(bb: flatbuffers.ByteBuffer, n: number, get: (i: number) => W.AppliedPush | null): AppliedPushMsg[] {
  const out: AppliedPushMsg[] = [];
  for (let j = 0; j < n; j++) {
    const a = get(j)!;
    out.push({ sender: a.sender() ?? '', seq: num(a.seq()), keys: vec(bb, a, 2, BigUint64Array) });
  }
  return out;
}

function decodePendingSums(bb: flatbuffers.ByteBuffer, c: W.CopyPending): PendingSumsMsg {
  return {
    table: c.table(), clock: num(c.clock()), keys: vec(bb, c, 2, BigUint64Array), sums: vec(bb, c, 3, Float64Array),
    applied: decodeAppliedPushes(bb, c.appliedLength(), (j) => c.applied(j)),
  };
}

function decodeHandoffMeta(bb: flatbuffers.ByteBuffer, m: W.HandoffMeta): BodyOf<'handoffMeta'> {
  const tables: HandoffTableMsg[] = [];
  for (let i = 0; i < m.tablesLength(); i++) {
    const t = m.tables(i)!;
    if (!t.spec()) throw new WireError('handoff table without a spec');
    const pending: PendingSumsMsg[] = [];
    for (let j = 0; j < t.pendingLength(); j++) pending.push(decodePendingSums(bb, t.pending(j)!));
    tables.push({
      spec: decodeTableSpecs(1, () => t.spec())[0]!, rows: t.rows(),
      applied: decodeAppliedPushes(bb, t.appliedLength(), (j) => t.applied(j)), pending,
    });
  }
  const clocks: WorkerClockMsg[] = [];
  for (let i = 0; i < m.clocksLength(); i++) { const c = m.clocks(i)!; clocks.push({ rank: c.rank(), clock: num(c.clock()) }); }
  const wholePushes: SenderPushesMsg[] = [];
  for (let i = 0; i < m.wholePushesLength(); i++) {
    const w = m.wholePushes(i)!;
    wholePushes.push({ sender: w.sender() ?? '', seqs: Array.from(vec(bb, w, 1, BigUint64Array), num) });
  }
  return { type: 'handoffMeta', tables, clocks, wholePushes };
}

function decodePush(bb: flatbuffers.ByteBuffer, p: W.Push): PushBody {
  const v = values(bb, p, 2, 3, 7);
  return {
    type: 'push', table: p.table(), keys: vec(bb, p, 1, BigUint64Array), values: v.values, format: v.format,
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
      const since = h.since();
      if (since !== null) hello.since = num(since);
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
      return { type: 'pull', table: p.table(), keys: vec(bb, p, 1, BigUint64Array), clock: num(p.clock()), worker: p.worker(), format: askedFormat('pull', p) };
    }
    case W.Body.PullReply: {
      const p = get(W.PullReply);
      const v = values(bb, p, 2, 3, 5);
      return { type: 'pullReply', table: p.table(), dim: p.dim(), values: v.values, format: v.format, fresh: num(p.fresh()) };
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
      for (let i = 0; i < c.filesLength(); i++) files.push(c.files(i) ?? '');
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
        offset: num(a.offset()), values: v.values, f16: v.format === 'f16',
      };
    }
    case W.Body.StatsRequest: return { type: 'statsRequest' };
    case W.Body.CopyPending: return { type: 'copyPending', ...decodePendingSums(bb, get(W.CopyPending)) };
    case W.Body.HandoffMetaRequest: return { type: 'handoffMetaRequest', retry: get(W.HandoffMetaRequest).retry() };
    case W.Body.HandoffMeta: return decodeHandoffMeta(bb, get(W.HandoffMeta));
    case W.Body.AssignRows: {
      const a = get(W.AssignRows);
      const body: BodyOf<'assignRows'> = { type: 'assignRows', table: a.table(), keys: vec(bb, a, 1, BigUint64Array), values: vec(bb, a, 2, Float32Array) };
      if (a.withState()) body.state = { slots: vec(bb, a, 4, Float32Array), slotCount: a.slotCount(), steps: vec(bb, a, 6, Uint32Array) };
      return body;
    }
    case W.Body.ReadRows: {
      const r = get(W.ReadRows);
      return { type: 'readRows', table: r.table(), keys: vec(bb, r, 1, BigUint64Array) };
    }
    case W.Body.PullBatch: {
      const p = get(W.PullBatch);
      const parts = [];
      for (let i = 0; i < p.partsLength(); i++) {
        const x = p.parts(i)!;
        parts.push({ table: x.table(), keys: vec(bb, x, 1, BigUint64Array), ...(x.state() ? { state: true } : {}) });
      }
      return { type: 'pullBatch', parts, clock: num(p.clock()), worker: p.worker(), format: askedFormat('pull batch', p) };
    }
    case W.Body.PullBatchReply: {
      const r = get(W.PullBatchReply);
      const v = values(bb, r, 2, 3, 6);
      const widths = r.stateWidthsLength() ? vec(bb, r, 5, Uint32Array) : undefined;
      return { type: 'pullBatchReply', offsets: vec(bb, r, 0, Uint32Array), dims: vec(bb, r, 1, Uint32Array), values: v.values, format: v.format, fresh: num(r.fresh()), ...(widths ? { stateWidths: widths } : {}) };
    }
    case W.Body.PushBatch: {
      const p = get(W.PushBatch);
      const parts = [];
      for (let i = 0; i < p.partsLength(); i++) {
        const x = p.parts(i)!;
        parts.push({ table: x.table(), keys: vec(bb, x, 1, BigUint64Array), seq: num(x.seq()), offset: x.offset() });
      }
      const v = values(bb, p, 1, 2, 5);
      return { type: 'pushBatch', parts, values: v.values, format: v.format, worker: p.worker(), clock: num(p.clock()) };
    }
    case W.Body.PushBatchAck: {
      const a = get(W.PushBatchAck);
      const acks = [];
      for (let i = 0; i < a.acksLength(); i++) { const x = a.acks(i)!; acks.push({ seq: num(x.seq()), applied: x.applied() }); }
      return { type: 'pushBatchAck', acks };
    }
    case W.Body.HandoffRequest: { const h = get(W.HandoffRequest); return { type: 'handoffRequest', table: h.table(), offset: h.offset(), limit: h.limit() }; }
    case W.Body.StatsReply: return { type: 'statsReply', json: get(W.StatsReply).json() ?? '' };
    case W.Body.Ok: return { type: 'ok' };
    case W.Body.Error: { const e = get(W.Error); return { type: 'error', code: e.code(), message: e.message() ?? '' }; }
    default: throw new WireError(`unknown body type ${t}`);
  }
}

function decodeVerified(bytes: Uint8Array, spec: TableSpec, expect?: W.Body): Envelope {
  try {
    verifyRoot(bytes, spec);
    const bb = new flatbuffers.ByteBuffer(bytes);
    if (!W.Envelope.bufferHasIdentifier(bb)) throw new WireError('frame does not carry the HBPS identifier');
    const env = W.Envelope.getRootAsEnvelope(bb);
    if (expect !== undefined && env.bodyType() !== expect) throw new WireError(`expected ${bodyName(expect)}, got ${bodyName(env.bodyType())}`);
    const requestId = num(env.requestId()), reply = env.reply();
    let body: Body;
    try {
      body = decodeBody(bb, env);
    } catch (e) {
      // The envelope parsed: a request's error reply can go to its requester instead of id 0.
      if (e instanceof WireError && !reply) e.requestId = requestId;
      throw e;
    }
    return { requestId, reply, sender: env.sender() ?? '', epoch: num(env.epoch()), body };
  } catch (e) {
    if (e instanceof WireError) throw e;
    throw new WireError(`malformed frame: ${(e as Error).message}`);
  }
}

const bodyName = (t: W.Body): string => {
  const n = W.Body[t];
  return n && t !== W.Body.NONE ? n[0]!.toLowerCase() + n.slice(1) : `body type ${t}`;
};

/**
 * Parses one frame. Throws WireError naming the cause for anything malformed; never reads outside
 * `frame`, and does work and allocates memory in proportion to `frame.length` at most. Payload
 * vectors in the result may alias `frame` (zero-copy): copy them to keep them.
 */
export function decode(frame: Uint8Array): Envelope {
  return decodeVerified(frame, EnvelopeSpec);
}

/** Envelope specs that verify only one body type's fields; any other body is only bounds-checked. */
const handshakeSpecs = new Map<W.Body, TableSpec>();
for (const t of [W.Body.Hello, W.Body.Challenge]) {
  const only = BodySpecs.map((s, i) => (s ? (i === t ? s : []) : undefined));
  handshakeSpecs.set(t, [...EnvelopeSpec.slice(0, -1), { k: 'union', specs: only }]);
}

/**
 * Parses the first frame of a link, which must be a `type` (hello or challenge): anything else
 * is refused naming what came, without walking its body.
 */
export function decodeHandshake<T extends 'hello' | 'challenge'>(frame: Uint8Array, type: T): Envelope<BodyOf<T>> {
  const t = type === 'hello' ? W.Body.Hello : W.Body.Challenge;
  return decodeVerified(frame, handshakeSpecs.get(t)!, t) as Envelope<BodyOf<T>>;
}
