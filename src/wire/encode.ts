// Envelope -> bytes. Encoding uses the generated FlatBuffers builders; payload vectors (keys,
// values) are bulk-copied into the builder instead of one add per element.
import * as flatbuffers from 'flatbuffers';
import * as W from './generated/hybridps/wire.ts';
import { narrowValues, toWireRowFormat, type RowFormat } from './row-format.ts';
import type { AppliedPushMsg, Body, BodyOf, ClusterViewMsg, Envelope, PendingSumsMsg, PushBody, TableSpecMsg, ValuesWriter } from './messages.ts';

/** Appends a vector with one memcpy (the generated createXVector adds element by element). */
function bulkVector(b: flatbuffers.Builder, data: ArrayBufferView, elemSize: number): number {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  b.startVector(elemSize, bytes.length / elemSize, Math.max(elemSize, 4));
  const internal = b as unknown as { space: number; bb: flatbuffers.ByteBuffer };
  internal.space -= bytes.length;
  internal.bb.bytes().set(bytes, internal.space);
  return b.endVector();
}

/** The one values vector of a row payload, by format: [values, values_f16, values_bf16] offsets (0: absent). */
type ValueVectors = [number, number, number];

/**
 * Reserves an n-element vector of 2-byte values in the builder and narrows `values` straight into
 * it (no staging array); where the reserved bytes are not 2-aligned in memory, through a copy.
 */
function narrowVector(b: flatbuffers.Builder, values: Float32Array, format: 'f16' | 'bf16'): number {
  b.startVector(2, values.length, 4);
  const internal = b as unknown as { space: number; bb: flatbuffers.ByteBuffer };
  internal.space -= values.length * 2;
  const bytes = internal.bb.bytes();
  const at = bytes.byteOffset + internal.space;
  if (at % 2 === 0) narrowValues(values, format, new Uint16Array(bytes.buffer, at, values.length));
  else bytes.set(new Uint8Array(narrowValues(values, format).buffer), internal.space);
  return b.endVector();
}

/**
 * The values an encode() left out of its frame for the link to send from where they are: `chunks`
 * (Float32Arrays, one after the other) belong at `at` in the frame, `bytes` long.
 */
export interface FrameHole { at: number; bytes: number; chunks: Float32Array[] }
/** While an encode() that takes a hole runs: where its values vector is, counted from the buffer's end (builders grow at the front). */
let hole: { fromEnd: number; bytes: number; chunks: Float32Array[] } | null = null, holeWanted = false, holeMinBytes = 0;

function valuesVectors(b: flatbuffers.Builder, values: Float32Array, format: RowFormat | undefined, writer?: ValuesWriter): ValueVectors {
  const f = format ?? 'f32';
  if (writer && f === 'f32') {
    // Reserve the vector in the builder and let the writer fill it in place (or leave it to the link).
    b.startVector(4, writer.length, 4);
    const internal = b as unknown as { space: number; bb: flatbuffers.ByteBuffer };
    internal.space -= writer.length * 4;
    const bytes = internal.bb.bytes();
    if (holeWanted && !hole && writer.length * 4 > holeMinBytes && writer.chunks?.reduce((n, c) => n + c.length, 0) === writer.length) hole = { fromEnd: bytes.length - internal.space, bytes: writer.length * 4, chunks: writer.chunks };
    else writer.write(new Float32Array(bytes.buffer, bytes.byteOffset + internal.space, writer.length));
    return [b.endVector(), 0, 0];
  }
  if (writer) {
    values = new Float32Array(writer.length);
    writer.write(values);
  }
  if (f === 'f16') return [0, narrowVector(b, values, f), 0];
  if (f === 'bf16') return [0, 0, narrowVector(b, values, f)];
  return [bulkVector(b, values, 4), 0, 0];
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
    if (m.since) W.Member.addSince(b, big(m.since));
    return W.Member.endMember(b);
  });
  const mv = W.ClusterView.createMembersVector(b, members);
  W.ClusterView.startClusterView(b);
  W.ClusterView.addEpoch(b, big(v.epoch));
  W.ClusterView.addMembers(b, mv);
  W.ClusterView.addVnodes(b, v.vnodes);
  W.ClusterView.addReplicas(b, v.replicas);
  W.ClusterView.addWorkersEpoch(b, big(v.workersEpoch ?? 0));
  if (v.jobEnded) W.ClusterView.addJobEnded(b, true);
  return W.ClusterView.endClusterView(b);
}

function encodeTableSpec(b: flatbuffers.Builder, t: TableSpecMsg): number {
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
}

function encodeTableSpecs(b: flatbuffers.Builder, specs: TableSpecMsg[]): number {
  return W.DeclareTables.createTablesVector(b, specs.map((t) => encodeTableSpec(b, t)));
}

function encodeAppliedPushes(b: flatbuffers.Builder, applied: AppliedPushMsg[]): number {
  return W.CopyPending.createAppliedVector(b, applied.map((a) => {
    const sender = b.createString(a.sender);
    return W.AppliedPush.createAppliedPush(b, sender, big(a.seq), bulkVector(b, a.keys, 8));
  }));
}

function encodePendingSums(b: flatbuffers.Builder, p: PendingSumsMsg): number {
  const keys = bulkVector(b, p.keys, 8);
  const sums = bulkVector(b, p.sums, 8);
  return W.CopyPending.createCopyPending(b, p.table, big(p.clock), keys, sums, encodeAppliedPushes(b, p.applied));
}

function encodeHandoffMeta(b: flatbuffers.Builder, m: BodyOf<'handoffMeta'>): number {
  const tables = W.HandoffMeta.createTablesVector(b, m.tables.map((t) => {
    const spec = encodeTableSpec(b, t.spec);
    const applied = encodeAppliedPushes(b, t.applied);
    const pending = W.HandoffTable.createPendingVector(b, t.pending.map((p) => encodePendingSums(b, p)));
    W.HandoffTable.startHandoffTable(b);
    W.HandoffTable.addSpec(b, spec);
    W.HandoffTable.addRows(b, t.rows);
    W.HandoffTable.addApplied(b, applied);
    W.HandoffTable.addPending(b, pending);
    return W.HandoffTable.endHandoffTable(b);
  }));
  const clocks = W.HandoffMeta.createClocksVector(b, m.clocks.map((c) => W.WorkerClock.createWorkerClock(b, c.rank, big(c.clock))));
  const whole = W.HandoffMeta.createWholePushesVector(b, m.wholePushes.map((w) => {
    const sender = b.createString(w.sender);
    return W.SenderPushes.createSenderPushes(b, sender, bulkVector(b, BigUint64Array.from(w.seqs, big), 8));
  }));
  return W.HandoffMeta.createHandoffMeta(b, tables, clocks, whole);
}

function encodePush(b: flatbuffers.Builder, p: PushBody): number {
  const keys = bulkVector(b, p.keys, 8);
  const [vals, vals16, valsBf16] = valuesVectors(b, p.values, p.format);
  W.Push.startPush(b);
  W.Push.addTable(b, p.table);
  W.Push.addKeys(b, keys);
  if (vals) W.Push.addValues(b, vals);
  if (vals16) W.Push.addValuesF16(b, vals16);
  if (valsBf16) W.Push.addValuesBf16(b, valsBf16);
  W.Push.addWorker(b, p.worker);
  W.Push.addClock(b, big(p.clock));
  W.Push.addSeq(b, big(p.seq));
  return W.Push.endPush(b);
}

function encodePullBatch(b: flatbuffers.Builder, p: BodyOf<'pullBatch'>): number {
  const parts = W.PullBatch.createPartsVector(b, p.parts.map((x) => W.PullPart.createPullPart(b, x.table, bulkVector(b, x.keys, 8), !!x.state)));
  const f = p.format ?? 'f32';
  return W.PullBatch.createPullBatch(b, parts, big(p.clock), p.worker, f === 'f16', toWireRowFormat(f));
}

function encodePushBatch(b: flatbuffers.Builder, p: BodyOf<'pushBatch'>): number {
  const parts = W.PushBatch.createPartsVector(b, p.parts.map((x) =>
    W.PushPart.createPushPart(b, x.table, bulkVector(b, x.keys, 8), big(x.seq), x.offset)));
  const [vals, vals16, valsBf16] = valuesVectors(b, p.values, p.format, p.writer);
  return W.PushBatch.createPushBatch(b, parts, vals, vals16, p.worker, big(p.clock), valsBf16);
}

function encodeBody(b: flatbuffers.Builder, body: Body): [W.Body, number] {
  switch (body.type) {
    case 'challenge':
      return [W.Body.Challenge, W.Challenge.createChallenge(b, bulkVector(b, body.nonce, 1))];
    case 'hello': {
      const id = b.createString(body.nodeId);
      const addr = b.createString(body.address);
      const mac = bulkVector(b, body.mac, 1);
      return [W.Body.Hello, W.Hello.createHello(b, body.role, id, addr, mac, body.ringEpoch === undefined ? null : big(body.ringEpoch),
        body.since === undefined ? null : big(body.since))];
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
      const keys = bulkVector(b, body.keys, 8), f = body.format ?? 'f32';
      // f16 is also flagged the older way, so a server from before `format` still answers in fp16.
      return [W.Body.Pull, W.Pull.createPull(b, body.table, keys, big(body.clock), body.worker, f === 'f16', toWireRowFormat(f))];
    }
    case 'pullReply': {
      const [vals, vals16, valsBf16] = valuesVectors(b, body.values, body.format, body.writer);
      return [W.Body.PullReply, W.PullReply.createPullReply(b, body.table, body.dim, vals, vals16, big(body.fresh ?? -1), valsBf16)];
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
      const [vals, vals16] = valuesVectors(b, body.values, body.f16 ? 'f16' : 'f32');
      return [W.Body.AllreduceChunk, W.AllreduceChunk.createAllreduceChunk(
        b, big(body.opId), big(body.ringEpoch), body.step, body.segment, big(body.offset), vals, vals16)];
    }
    case 'copyPending':
      return [W.Body.CopyPending, encodePendingSums(b, body)];
    case 'handoffMetaRequest':
      W.HandoffMetaRequest.startHandoffMetaRequest(b);
      if (body.retry) W.HandoffMetaRequest.addRetry(b, true);
      return [W.Body.HandoffMetaRequest, W.HandoffMetaRequest.endHandoffMetaRequest(b)];
    case 'handoffMeta':
      return [W.Body.HandoffMeta, encodeHandoffMeta(b, body)];
    case 'assignRows': {
      const keys = bulkVector(b, body.keys, 8);
      const vals = bulkVector(b, body.values, 4);
      const st = body.state;
      const slots = st ? bulkVector(b, st.slots, 4) : 0, steps = st ? bulkVector(b, st.steps, 4) : 0;
      return [W.Body.AssignRows, W.AssignRows.createAssignRows(b, body.table, keys, vals, !!st, slots, st?.slotCount ?? 0, steps)];
    }
    case 'readRows':
      return [W.Body.ReadRows, W.ReadRows.createReadRows(b, body.table, bulkVector(b, body.keys, 8))];
    case 'pullBatch':
      return [W.Body.PullBatch, encodePullBatch(b, body)];
    case 'pullBatchReply': {
      const offsets = bulkVector(b, body.offsets, 4);
      const dims = bulkVector(b, body.dims, 4);
      const widths = body.stateWidths?.some((w) => w > 0) ? bulkVector(b, body.stateWidths, 4) : 0;
      const [vals, vals16, valsBf16] = valuesVectors(b, body.values, body.format, body.writer);
      return [W.Body.PullBatchReply, W.PullBatchReply.createPullBatchReply(b, offsets, dims, vals, vals16, big(body.fresh ?? -1), widths, valsBf16)];
    }
    case 'pushBatch':
      return [W.Body.PushBatch, encodePushBatch(b, body)];
    case 'pushBatchAck':
      return [W.Body.PushBatchAck, W.PushBatchAck.createPushBatchAck(b, W.PushBatchAck.createAcksVector(b,
        body.acks.map((a) => W.PushAck.createPushAck(b, big(a.seq), a.applied))))];
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
    case 'copyPending': return pendingBytes(body);
    case 'handoffMeta': return body.tables.reduce((n, t) => n + 1024 + appliedBytes(t.applied) + t.pending.reduce((m, p) => m + pendingBytes(p), 0), 0) +
      body.clocks.length * 32 + body.wholePushes.reduce((n, w) => n + 8 * w.seqs.length + 4 * w.sender.length + 64, 0);
    case 'assignRows': return body.keys.byteLength + body.values.byteLength + (body.state ? body.state.slots.byteLength + body.state.steps.byteLength : 0);
    case 'readRows': return body.keys.byteLength;
    case 'copyRows': return body.keys.byteLength + body.values.byteLength + body.slots.byteLength + body.steps.byteLength;
    case 'pullBatch': return body.parts.reduce((n, x) => n + x.keys.byteLength + 32, 0);
    case 'pullBatchReply': return (body.writer ? body.writer.length * 4 : body.values.byteLength) + 12 * body.offsets.length + 64;
    case 'pushBatch': return body.parts.reduce((n, x) => n + x.keys.byteLength + 48, body.writer ? body.writer.length * 4 : body.values.byteLength);
    case 'pushBatchAck': return 32 * body.acks.length;
    default: return 0;
  }
}

function appliedBytes(applied: AppliedPushMsg[]): number {
  return applied.reduce((n, a) => n + a.keys.byteLength + 4 * a.sender.length + 64, 0);
}

function pendingBytes(p: PendingSumsMsg): number {
  return p.keys.byteLength + p.sums.byteLength + appliedBytes(p.applied) + 64;
}

/**
 * encode(), but a values writer with `chunks` is not copied: its bytes in the frame are left as
 * they are (stale) and `hole` says where the chunks go. The frame is whole only when sent as
 * frame[0, at), the chunks, frame[at + bytes, end) (FramedSocket.sendParts). Values of at most
 * `minBytes` are copied in as encode() copies them (no hole).
 */
export function encodeWithHole(env: Envelope, builder?: flatbuffers.Builder, minBytes = 0): { bytes: Uint8Array; hole: FrameHole | null } {
  holeWanted = true;
  holeMinBytes = minBytes;
  try {
    const bytes = encode(env, builder), h = hole;
    return { bytes, hole: h ? { at: bytes.byteLength - h.fromEnd, bytes: h.bytes, chunks: h.chunks } : null };
  } finally { holeWanted = false; hole = null; }
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
