// Which reply each request gets. A request is a body sent with a request id (Connection.request);
// its answer is one of the body types listed here, or an `error`. The map types the reply a
// caller gets back, and `checkReply` holds a peer to it at run time, so a wrong answer is an
// error naming both kinds instead of a misread of the wrong fields.
import { ErrorCode } from './generated/hybridps/wire.ts';
import { WireError, type BodyOf, type BodyType } from './codec.ts';

export const REPLY_OF = {
  hello: ['welcome'],
  heartbeat: ['ok'],
  leave: ['ok'],
  declareTables: ['declareTablesReply'],
  pull: ['pullReply'],
  push: ['pushAck'],
  replicaPush: ['pushAck'],
  // Every table's part for one server in one message (one per server per step).
  pullBatch: ['pullBatchReply'],
  pushBatch: ['pushBatchAck'],
  clock: ['clockAck'],
  barrier: ['barrierRelease'],
  checkpoint: ['checkpointReply'],
  restore: ['checkpointReply'],
  copyRows: ['ok'],
  copyPending: ['ok'],
  assignRows: ['ok'],
  readRows: ['copyRows'], // a worker reading rows with their optimizer state (hot rows)
  // A joining server's handoff: the state around the rows, then the rows in pages.
  handoffMetaRequest: ['handoffMeta'],
  handoffRequest: ['copyRows'],
  statsRequest: ['statsReply'],
} as const satisfies { readonly [K in BodyType]?: readonly BodyType[] };

export type RequestType = keyof typeof REPLY_OF;
export type RequestBody = BodyOf<RequestType>;
/** The body types a request of type T may be answered with (besides an error). */
export type ReplyType<T extends RequestType> = (typeof REPLY_OF)[T][number];
export type Reply<T extends RequestType> = BodyOf<ReplyType<T>>;

/** A peer answered a request with a body of a kind that request does not get. */
export class UnexpectedReplyError extends WireError {
  override name = 'UnexpectedReplyError';
  constructor(readonly request: BodyType, readonly expected: readonly BodyType[], readonly received: BodyType, peer: string) {
    super(`${peer} answered ${request} with ${received}; ${request} is answered with ${expected.join(' or ') || 'nothing (not a request)'}`, ErrorCode.Malformed);
  }
}

/** The reply kinds allowed for a request of `type`; empty for a body that is not a request. */
export function replyTypesOf(type: BodyType): readonly BodyType[] {
  return (REPLY_OF as { readonly [K in BodyType]?: readonly BodyType[] })[type] ?? [];
}

/** Throws UnexpectedReplyError unless `received` is one of `expected` (an error is always allowed). */
export function checkReply(request: BodyType, expected: readonly BodyType[], received: BodyType, peer: string): void {
  if (received !== 'error' && !expected.includes(received)) throw new UnexpectedReplyError(request, expected, received, peer);
}
