// Fencing by view epoch (docs/operations.md, "Fencing"): whether this server may answer data
// requests, from the views it has seen. A server the scheduler declared dead (cut off, or too
// slow to beat) may still be running and reachable by some peers; from the view that dropped it,
// others hold its key ranges and acknowledge their writes. So:
//   - a view that does not list this server, after one that did, fences it: it refuses every data
//     request (Fenced, naming the epoch) until it is registered again;
//   - a view that lists it with a newer `since` than the one it joined under (it was declared dead
//     and registered again, possibly without ever seeing the view that dropped it) starts a new
//     incarnation: the server drops everything it held and takes its rows over afresh, like a
//     server that restarted (handoff.ts);
//   - a write that began under an earlier incarnation is not acknowledged (Fenced): its effect
//     was in the state the server dropped, and the sender's retry reaches the new one.
// A request sent under a view older than this incarnation is refused too (it was meant for an
// earlier one). Requests from other servers are fenced too: only the servers of the receiver's view may
// replicate into it (authorization.ts answers Fenced for a server not in the view).
import { RpcError } from '../transport/index.ts';
import { ErrorCode, type Body } from '../wire/codec.ts';
import type { ClusterView } from '../cluster/cluster-view.ts';

/** What a new view means for this server. */
export type Membership = 'joined' | 'member' | 'declaredDead' | 'absent';

/** Requests that read or write rows or clocks: refused while this server is fenced. */
const FENCED_KINDS: ReadonlySet<Body['type']> = new Set([
  'pull', 'push', 'pullBatch', 'pushBatch', 'replicaPush', 'copyRows', 'copyPending', 'assignRows', 'clock', 'handoffMetaRequest', 'handoffRequest',
]);
/** Writes: not acknowledged when the incarnation they began under has ended. */
const WRITES: ReadonlySet<Body['type']> = new Set(['push', 'pushBatch', 'replicaPush', 'copyRows', 'copyPending', 'assignRows']);

export class Fence {
  /** `since` of this server's incarnation as the views list it (-1: not listed yet). */
  private since = -1;
  /** The epoch of the view that dropped this server, while it is not registered again. */
  private deadIn: number | null = null;
  /** Bumped at every new incarnation (a restart in place). */
  incarnation = 0;

  constructor(private readonly nodeId: string) {}

  /** Whether this server is fenced now (declared dead and not registered again). */
  get fenced(): boolean { return this.deadIn !== null; }

  /** Call on every new view, before anything else reads it. */
  onView(view: ClusterView): Membership {
    const me = view.servers.find((m) => m.nodeId === this.nodeId);
    if (!me) {
      if (this.since < 0 || this.deadIn !== null) return 'absent';
      this.deadIn = view.epoch;
      return 'declaredDead';
    }
    const since = me.since ?? 0;
    // A scheduler that does not send `since` (0): only the first view starts an incarnation.
    const fresh = this.since < 0 || this.deadIn !== null || (since > 0 && since !== this.since);
    this.since = since;
    this.deadIn = null;
    if (!fresh) return 'member';
    this.incarnation++;
    return 'joined';
  }

  /**
   * Refuses a data request while fenced (Fenced, naming the view that dropped this server), and
   * one sent under a view older than this incarnation (`senderEpoch` < since): it was routed to
   * an earlier incarnation, or sat in a cut link's buffers while others took this server's
   * ranges (it arrives when the path heals, after this server started over).
   */
  admit(type: Body['type'], senderEpoch: number, view: ClusterView): void {
    if (!FENCED_KINDS.has(type)) return;
    if (this.deadIn !== null) {
      throw new RpcError(ErrorCode.Fenced, `${type} refused: server ${this.nodeId} was declared dead in view ${this.deadIn} (it has view ${view.epoch}) ` +
        'and acknowledges nothing until it has registered again and taken its rows over; retry under the current view');
    }
    if (senderEpoch < this.since) {
      throw new RpcError(ErrorCode.Fenced, `${type} refused: sent under view ${senderEpoch}, before server ${this.nodeId} registered again in view ${this.since}; ` +
        'retry under the current view');
    }
  }

  /** Refuses to acknowledge a write that began under incarnation `began`, which has ended since. */
  acknowledge(type: Body['type'], began: number, view: ClusterView): void {
    if (began === this.incarnation || !WRITES.has(type)) return;
    throw new RpcError(ErrorCode.Fenced, `${type} not acknowledged: server ${this.nodeId} was declared dead and registered again (view ${view.epoch}) ` +
      'while it was applied, and dropped that state; retry under the current view');
  }
}
