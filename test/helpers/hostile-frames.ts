// Frames an honest encoder never writes, built with the generated FlatBuffers builders: offsets
// that alias one object many times (a small frame describing N x M objects), vectors placed at
// every misalignment, and frames placed at every byte offset of a buffer.
import * as flatbuffers from 'flatbuffers';
import * as W from '../../src/wire/generated/hybridps/wire.ts';
import { encode, type Envelope } from '../../src/wire/codec.ts';

function finish(b: flatbuffers.Builder, type: W.Body, body: number, requestId: number): Uint8Array {
  const sender = b.createString('attacker');
  W.Envelope.startEnvelope(b);
  W.Envelope.addRequestId(b, BigInt(requestId));
  W.Envelope.addSender(b, sender);
  W.Envelope.addBodyType(b, type);
  W.Envelope.addBody(b, body);
  W.Envelope.finishEnvelopeBuffer(b, W.Envelope.endEnvelope(b));
  return b.asUint8Array().slice();
}

/** DeclareTables: `n` table entries pointing at one TableSpec whose `m` hyper entries point at one HyperParam. */
export function aliasedDeclareTables(n: number, m: number, requestId = 1): Uint8Array {
  const b = new flatbuffers.Builder(4 * (n + m) + 1024);
  const hp = W.HyperParam.createHyperParam(b, b.createString('lr'), 0.1);
  const hyper = W.TableSpec.createHyperVector(b, new Array<number>(m).fill(hp));
  const name = b.createString('t');
  W.TableSpec.startTableSpec(b);
  W.TableSpec.addId(b, 9);
  W.TableSpec.addName(b, name);
  W.TableSpec.addDim(b, 4);
  W.TableSpec.addHyper(b, hyper);
  const spec = W.TableSpec.endTableSpec(b);
  const tables = W.DeclareTables.createTablesVector(b, new Array<number>(n).fill(spec));
  return finish(b, W.Body.DeclareTables, W.DeclareTables.createDeclareTables(b, tables, 1), requestId);
}

/** ClusterView: `n` member entries pointing at one member whose node_id is `len` bytes long. */
export function aliasedClusterView(n: number, len: number, requestId = 1): Uint8Array {
  const b = new flatbuffers.Builder(4 * n + len + 1024);
  const id = b.createString('x'.repeat(len));
  W.Member.startMember(b);
  W.Member.addNodeId(b, id);
  W.Member.addRole(b, W.Role.Worker);
  const m = W.Member.endMember(b);
  const members = W.ClusterView.createMembersVector(b, new Array<number>(n).fill(m));
  W.ClusterView.startClusterView(b);
  W.ClusterView.addEpoch(b, 1n);
  W.ClusterView.addMembers(b, members);
  return finish(b, W.Body.ClusterView, W.ClusterView.endClusterView(b), requestId);
}

/** CheckpointReply: `n` file names that are all one string of `len` bytes. */
export function aliasedCheckpointReply(n: number, len: number, requestId = 1): Uint8Array {
  const b = new flatbuffers.Builder(4 * n + len + 1024);
  const s = b.createString('f'.repeat(len));
  const files = W.CheckpointReply.createFilesVector(b, new Array<number>(n).fill(s));
  return finish(b, W.Body.CheckpointReply, W.CheckpointReply.createCheckpointReply(b, files, 0n), requestId);
}

/** CopyPending: `n` applied entries pointing at one AppliedPush holding `keys` keys. */
export function aliasedCopyPending(n: number, keys: number, requestId = 1): Uint8Array {
  const b = new flatbuffers.Builder(4 * n + 8 * keys + 1024);
  const kv = W.AppliedPush.createKeysVector(b, Array.from({ length: keys }, (_, i) => BigInt(i)));
  const sender = b.createString('w0');
  const a = W.AppliedPush.createAppliedPush(b, sender, 1n, kv);
  const applied = W.CopyPending.createAppliedVector(b, new Array<number>(n).fill(a));
  return finish(b, W.Body.CopyPending, W.CopyPending.createCopyPending(b, 1, 0n, 0, 0, applied), requestId);
}

/** Push whose keys and values vectors are the same bytes. */
export function pushSharingKeysAndValues(requestId = 1): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const v = W.Push.createKeysVector(b, Array.from({ length: 16 }, (_, i) => BigInt(i)));
  W.Push.startPush(b);
  W.Push.addTable(b, 1);
  W.Push.addKeys(b, v);
  W.Push.addValues(b, v);
  return finish(b, W.Body.Push, W.Push.endPush(b), requestId);
}

/** A builder that writes every vector `k` bytes below the position alignment gives it. */
export class MisalignBuilder extends flatbuffers.Builder {
  constructor(readonly k: number) { super(1 << 16); }
  override startVector(elemSize: number, n: number, alignment: number): void {
    super.startVector(elemSize, n, alignment);
    this.prep(1, this.k + elemSize * n + 4); // room for the shift and the length
    this.pad(this.k);
  }
}

/** `env` encoded with its vectors shifted by `k` bytes (0: as the encoder writes them). */
export function encodeMisaligned(env: Envelope, k: number): Uint8Array {
  return encode(env, new MisalignBuilder(k)).slice();
}

/**
 * `frame` copied to byte `offset` of a fresh Buffer whose other bytes are 0xff, as ws hands
 * frames out (a Buffer view into the socket's chunk): reading the wrong bytes shows.
 */
export function frameAt(frame: Uint8Array, offset: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(frame.length + offset + 16).fill(0xff);
  buf.set(frame, offset);
  return buf.subarray(offset, offset + frame.length);
}

/** Byte offset, within the frame, of the first element of the body's vector in field `slot`. */
export function vectorOffset(frame: Uint8Array, slot: number): number {
  const bb = new flatbuffers.ByteBuffer(frame);
  const body = W.Envelope.getRootAsEnvelope(bb).body(new W.Ok()) as unknown as { bb_pos: number };
  return bb.__vector(body.bb_pos + bb.__offset(body.bb_pos, 4 + 2 * slot));
}
