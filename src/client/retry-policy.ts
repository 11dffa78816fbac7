// When the client re-sends a request: decided by error class and code only, never by message.
// A request part is worth re-sending (re-routed under the next view, with its sequence number,
// so a server that already applied it does not again) when the link failed rather than the
// request, or when a server answered that the cluster is changing under it.
import { ErrorCode } from '../wire/codec.ts';
import { RemoteError, TransportError } from '../transport/index.ts';
import { NotInViewError } from '../cluster/member.ts';

/** Answers that mean "the cluster is changing under you": wait for the next view and re-send. */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.WrongOwner, ErrorCode.StaleEpoch, ErrorCode.Shutdown, ErrorCode.Aborted, ErrorCode.Timeout, ErrorCode.Fenced,
]);

// The client routed to a server that its current view no longer lists (the view moved meanwhile):
// raised by the member module's per-server links.
export { NotInViewError };

/**
 * True for a failure that a re-send under the next view can cure: the link could not be opened,
 * closed under the request or timed out (TransportError); a server's WrongOwner, StaleEpoch,
 * Shutdown, Aborted, Timeout or Fenced answer; a server gone from the view. Anything else (a refused
 * request, a reply of the wrong kind, a local mistake) fails at once.
 */
export function isRetryable(e: unknown): boolean {
  if (e instanceof TransportError || e instanceof NotInViewError) return true;
  return e instanceof RemoteError && RETRYABLE_CODES.has(e.code);
}
