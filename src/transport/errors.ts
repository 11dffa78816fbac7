// What can go wrong on a link, as classes with codes, so callers decide (retry, re-route, give up)
// by class and code; messages are for people. A peer's error reply is a RemoteError with the
// peer's code; a failure of the link itself is a TransportError: ConnectError (no link could be
// opened), ConnectionClosedError (the link closed under a request) or RequestTimeoutError.
import { ErrorCode, WireError } from '../wire/codec.ts';

/** The peer answered with an error reply. */
export class RemoteError extends Error {
  override name = 'RemoteError';
  constructor(readonly code: ErrorCode, message: string, readonly peer: string) {
    super(`${peer}: ${ErrorCode[code] ?? code}: ${message}`);
  }
}

/** Thrown by a request handler to answer with a typed error instead of a generic one. */
export class RpcError extends Error {
  override name = 'RpcError';
  constructor(readonly code: ErrorCode, message: string) { super(message); }
}

/**
 * The link failed, not the request. `code` is what a handler that met this failure while calling
 * a third node answers its own caller with (Aborted or Timeout: worth a retry once the view moved).
 */
export abstract class TransportError extends Error {
  abstract readonly code: ErrorCode;
}

/**
 * No link could be opened: unreachable, closed or timed out during the handshake, a bad
 * challenge, or a Peer out of attempts (a peer refusing the hello answers a RemoteError instead).
 */
export class ConnectError extends TransportError {
  override name = 'ConnectError';
  readonly code = ErrorCode.Aborted;
  constructor(readonly url: string, message: string) { super(message); }
}

/** The link closed (or was closed) while a request or send needed it. */
export class ConnectionClosedError extends TransportError {
  override name = 'ConnectionClosedError';
  readonly code = ErrorCode.Aborted;
}

/** No reply within the request's timeout. */
export class RequestTimeoutError extends TransportError {
  override name = 'RequestTimeoutError';
  readonly code = ErrorCode.Timeout;
}

/**
 * The code a handler's failure goes back with (Unknown for an untyped error). A handler that
 * called a third node and lost it (a replica died mid-forward) answers Aborted or Timeout, so the
 * original caller knows the request is worth retrying once the view has changed.
 */
export function errorCodeOf(e: unknown): ErrorCode {
  if (e instanceof RpcError || e instanceof WireError || e instanceof RemoteError || e instanceof TransportError) return e.code;
  return ErrorCode.Unknown;
}
