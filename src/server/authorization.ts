// Who may send a server each kind of request: by the role its sender authenticated as in the
// handshake and by its identity in the current cluster view (docs/wire.md, "Authorization").
// Every peer holds the cluster secret, so this cannot stop a peer that lies about who it is; it
// stops a buggy or compromised worker from replicating rows, seeding rows, or clocking for
// another worker. A refusal changes nothing and names the cause and the fix.
import { RpcError } from '../transport/index.ts';
import { ErrorCode, Role, type Body, type BodyType } from '../wire/codec.ts';
import type { RequestType } from '../wire/replies.ts';
import type { ClusterView } from '../cluster/cluster-view.ts';

/** The authenticated sender of a request. */
export interface Sender { readonly id: string; readonly role: Role }

/** Why `from` may not send `body` under `view` (a sentence naming the fix), or null when it may. */
type Rule = (from: Sender, body: Body, view: ClusterView) => string | null;

const roleName = (r: Role) => (Role[r] ?? `role ${r}`).toLowerCase();
const inView = (from: Sender, view: ClusterView) =>
  (from.role === Role.Server ? view.servers : from.role === Role.Worker ? view.workers : []).find((m) => m.nodeId === from.id);

/** Any authenticated peer. */
const anyone: Rule = () => null;
/** Workers, and the tools and observers that connect as clients (Role.Client). */
const dataPeer: Rule = (from) => from.role === Role.Worker || from.role === Role.Client ? null
  : `which is a ${roleName(from.role)}, not a worker or client`;
/** A server of the current view: replication and handoff traffic. */
const serverInView: Rule = (from, _b, view) => from.role === Role.Server && inView(from, view) ? null
  : `which is not a server in view ${view.epoch} (${from.role === Role.Server ? 'a server not registered' : `a ${roleName(from.role)}`}); only the servers of the current view replicate and hand over rows`;
/** A server of the view, or the view's rank-0 worker (which seeds the dense range rows, PSClient.assignRange, and writes back hot rows, PSClient.writeRows). */
const serverOrRankZero: Rule = (from, b, view) => {
  if (serverInView(from, b, view) === null) return null;
  const w = from.role === Role.Worker ? inView(from, view) : undefined;
  if (w?.rank === 0) return null;
  return `which is not a server or the rank-0 worker of view ${view.epoch} (${w ? `it is worker rank ${w.rank}` : `a ${roleName(from.role)} not in the view`}); rows are assigned by rank 0 only`;
};
/** A worker of the view, for its own rank only. */
const ownRank: Rule = (from, b, view) => {
  if (b.type !== 'clock') return null;
  const w = from.role === Role.Worker ? inView(from, view) : undefined;
  if (!w) return `for worker rank ${b.worker}, and the sender is not a worker in view ${view.epoch}; a worker registers with the scheduler before it clocks`;
  if (w.rank !== b.worker) return `for worker rank ${b.worker}, and the sender is worker rank ${w.rank} in view ${view.epoch}; a worker clocks its own rank only`;
  return null;
};

/** The rule for each kind of request: the one place to tighten. A kind not listed is not a server's to handle. */
export const MAY_SEND: { readonly [K in RequestType]?: Rule } = {
  declareTables: anyone, checkpoint: anyone, restore: anyone, statsRequest: anyone,
  pull: dataPeer, push: dataPeer, readRows: dataPeer,
  pullBatch: dataPeer, pushBatch: dataPeer, // as pull and push, every table's part in one message
  clock: ownRank,
  assignRows: serverOrRankZero,
  replicaPush: serverInView, copyRows: serverInView, copyPending: serverInView,
  handoffMetaRequest: serverInView, handoffRequest: serverInView,
};

/**
 * Throws Unsupported, naming the sender, the cause and the fix, unless `from` may send `body` under
 * `view`. A server the view does not list (declared dead, or not registered yet) is fenced: Fenced,
 * naming its epoch (`senderEpoch`) and ours, so a worker waiting on it retries under the next view.
 */
export function authorize(body: Body, from: Sender, view: ClusterView, senderEpoch?: number): void {
  const rule = (MAY_SEND as { readonly [K in BodyType]?: Rule })[body.type];
  if (!rule) throw new RpcError(ErrorCode.Unsupported, `a server does not handle ${body.type}`);
  const why = rule(from, body, view);
  if (why === null) {
    // A server's request sent before its current incarnation began (it sat in a cut link's buffers
    // while the sender was declared dead and registered again): that state was dropped, and a
    // copy or forward of it would overwrite rows others updated since.
    const m = from.role === Role.Server && senderEpoch !== undefined ? inView(from, view) : undefined;
    if (m && (m.since ?? 0) > senderEpoch!) {
      throw new RpcError(ErrorCode.Fenced, `${body.type} from ${from.id} was sent under view ${senderEpoch}, before it registered again in view ${m.since}: ` +
        'a request of its earlier incarnation, refused; it retries under the current view');
    }
    return;
  }
  if (from.role === Role.Server && !inView(from, view)) {
    throw new RpcError(ErrorCode.Fenced, `${body.type} from ${from.id} (sent under view ${senderEpoch ?? '?'}), ${why}: fenced by view ${view.epoch}`);
  }
  throw new RpcError(ErrorCode.Unsupported, `${body.type} from ${from.id}, ${why}`);
}
