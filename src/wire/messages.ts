// The messages of the wire contract as TypeScript values: what encode() takes and decode() returns.
import * as W from './generated/hybridps/wire.ts';
import type { RowFormat } from './row-format.ts';

export { Role, Consistency, ErrorCode } from './generated/hybridps/wire.ts';
export type { RowFormat } from './row-format.ts';
type Role = W.Role;
type ErrorCode = W.ErrorCode;

/** since: the epoch of the first view listing this incarnation (absent: not known; see fbs Member). */
export interface MemberMsg { nodeId: string; role: Role; address: string; rank: number; since?: number }
/** Rows of one (sender, seq) push, as a replica must remember them (see CopyPending). */
export interface AppliedPushMsg { sender: string; seq: number; keys: BigUint64Array }
/** BSP sums of one clock not yet applied, f64 (keys.length x dim), with the pushes they hold. */
export interface PendingSumsMsg { table: number; clock: number; keys: BigUint64Array; sums: Float64Array; applied: AppliedPushMsg[] }
/** What a former holder hands over of one table (HandoffMeta); the rows follow in pages. */
export interface HandoffTableMsg { spec: TableSpecMsg; rows: number; applied: AppliedPushMsg[]; pending: PendingSumsMsg[] }
/** Optimizer state of assigned rows: slotCount blocks of n x dim (slot s of row i at (s * n + i) * dim), per-row update counts. */
export interface RowState { slots: Float32Array; slotCount: number; steps: Uint32Array }
export interface WorkerClockMsg { rank: number; clock: number }
/** Pushes remembered as applied in full (their rows were let go). */
export interface SenderPushesMsg { sender: string; seqs: number[] }
export interface ClusterViewMsg {
  epoch: number; members: MemberMsg[]; vnodes: number; replicas: number;
  /** Epoch at which the worker set last changed (0 if never): names the allreduce ring. */
  workersEpoch?: number;
  /** The scheduler's last view of a finished job (`--job-workers`): servers exit. */
  jobEnded?: boolean;
}
export interface TableSpecMsg {
  id: number; name: string; dim: number; init: string; initScale: number; seed: bigint;
  optimizer: string; hyper: Record<string, number>; consistency: W.Consistency; staleness: number;
}
/** `format`: the reply's row values (absent: f32). */
export interface PullBody { type: 'pull'; table: number; keys: BigUint64Array; clock: number; worker: number; format?: RowFormat }
/** `format`, here and on the replies: how `values` travel (absent: f32); decoded values are always f32. */
export interface PushBody {
  type: 'push'; table: number; keys: BigUint64Array; values: Float32Array;
  worker: number; clock: number; seq: number; format?: RowFormat;
}
export interface AllreduceChunkBody {
  type: 'allreduceChunk'; opId: number; ringEpoch: number; step: number; segment: number;
  offset: number; values: Float32Array; f16?: boolean;
}
/** One table's keys of a PullBatch. */
export interface PullPartMsg {
  table: number; keys: BigUint64Array;
  /** Also the rows' optimizer state (PullBatchReply.stateWidths); f32 wire only. */
  state?: boolean;
}
export interface PullBatchBody { type: 'pullBatch'; parts: PullPartMsg[]; clock: number; worker: number; format?: RowFormat }
/** One table's rows of a PushBatch: keys.length x dim values at `offset` of the batch's values. */
export interface PushPartMsg { table: number; keys: BigUint64Array; seq: number; offset: number }
export interface PushBatchBody {
  type: 'pushBatch'; parts: PushPartMsg[]; values: Float32Array; worker: number; clock: number; format?: RowFormat;
  /** Writes the parts' gradients straight into the frame (instead of `values`). */
  writer?: ValuesWriter;
}
export interface PushAckMsg { seq: number; applied: boolean }
/**
 * Values produced straight into the outgoing frame (saves a buffer and a copy on big replies).
 * `chunks`, where the values are these arrays one after the other (`length` floats in all): a link
 * that can write several buffers as one frame sends them as they are, not copied into it.
 */
export interface ValuesWriter { length: number; write(dst: Float32Array): void; chunks?: Float32Array[] }

export type Body =
  | { type: 'challenge'; nonce: Uint8Array }
  /** `ringEpoch`: set on a worker's link to its allreduce neighbour, the ring it serves. */
  /** `since`: on a member's link to the scheduler, the incarnation it last saw itself listed with (fbs Hello). */
  | { type: 'hello'; role: Role; nodeId: string; address: string; mac: Uint8Array; ringEpoch?: number; since?: number }
  | { type: 'welcome'; nodeId: string; view: ClusterViewMsg | null; heartbeatMs?: number }
  | { type: 'clusterView'; view: ClusterViewMsg }
  | { type: 'heartbeat'; nodeId: string; clock: number }
  | { type: 'leave'; nodeId: string }
  | { type: 'declareTables'; tables: TableSpecMsg[]; workers: number }
  | { type: 'declareTablesReply'; tables: TableSpecMsg[] }
  | PullBody
    /** fresh: the slowest live worker's clock when the rows were read (-1 / absent: unknown; see fbs PullReply.fresh). */
  | { type: 'pullReply'; table: number; dim: number; values: Float32Array; format?: RowFormat; writer?: ValuesWriter; fresh?: number }
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
  | ({ type: 'copyPending' } & PendingSumsMsg)
  | { type: 'handoffMetaRequest'; retry?: boolean }
  | { type: 'handoffMeta'; tables: HandoffTableMsg[]; clocks: WorkerClockMsg[]; wholePushes: SenderPushesMsg[] }
  | { type: 'assignRows'; table: number; keys: BigUint64Array; values: Float32Array; state?: RowState }
  | { type: 'readRows'; table: number; keys: BigUint64Array }
  | PullBatchBody
  /** Part i's values (keys_i x dims[i]) start at offsets[i] of the one value section. */
  | { type: 'pullBatchReply'; offsets: Uint32Array; dims: Uint32Array; values: Float32Array; format?: RowFormat; writer?: ValuesWriter; fresh?: number; stateWidths?: Uint32Array }
  | PushBatchBody
  | { type: 'pushBatchAck'; acks: PushAckMsg[] }
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
  /** Set when the frame was a request whose envelope parsed but whose body did not: its error reply goes to this id. */
  requestId?: number;
  constructor(message: string, readonly code: ErrorCode = W.ErrorCode.Malformed) { super(message); }
}
