// Why an allreduce failed. Every failure names the op, the ring epoch and the cause, so a caller
// can tell a ring change (call setRing, retry) from a peer that sent something wrong.

export class AllreduceError extends Error {
  override name = 'AllreduceError';
}

/** The ring the op ran on is gone: a link closed, a neighbour was unreachable, setRing or close ran. */
export class AllreduceAbortedError extends AllreduceError {
  override name = 'AllreduceAbortedError';
}

/** No data for the op arrived within timeoutMs (a peer hung, or the callers' op sequences differ). */
export class AllreduceTimeoutError extends AllreduceError {
  override name = 'AllreduceTimeoutError';
}

/** A neighbour sent a chunk that does not fit the op (offset, length, step, encoding). */
export class AllreduceProtocolError extends AllreduceError {
  override name = 'AllreduceProtocolError';
}
