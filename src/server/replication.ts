// Chain replication (R copies of every row, docs/operations.md). Each key's chain is its owner
// on the hash ring, then the next R-1 distinct servers. A worker's push goes to the head, which
// applies it and forwards it down the chain (ReplicaPush); each server answers once the rest of
// the chain has it, so an acknowledged push is on every replica. After a view change, the head
// of each row copies it to the chain members that did not hold it before (CopyRows, and the BSP
// sums of clocks not yet applied as CopyPending), so R copies exist again.
import { RpcError } from '../transport/index.ts';
import { Consistency, ErrorCode, type Body, type BodyOf, type PushBody } from '../wire/codec.ts';
import type { ClusterView } from '../cluster/cluster-view.ts';
import { keyNumber, keysToNumbers, keyWords } from '../keys/keys.ts';
import type { ServerContext } from './server-context.ts';
import { checkFinite, checkKeys, refuse } from './request-checks.ts';
import { copyRowsBody, importCopiedRows } from './row-copy.ts';
import { gatherKeys } from '../keys/index-arrays.ts';

export class Replication {
  /** Copies sent by rereplicate not yet answered (an answer means applied): 0 once R copies exist again. */
  copiesInFlight = 0;

  constructor(private readonly ctx: ServerContext) {}

  /**
   * For each key, checks this server's place in its chain (the head, for a worker's request) and
   * groups the keys by the chain's next server. Throws WrongOwner so the sender re-routes.
   */
  nextHops(table: number, keys: BigUint64Array, mustBeHead: boolean): Map<string, number[]> {
    const next = new Map<string, number[]>();
    const view = this.ctx.member.view, me = this.ctx.member.nodeId;
    if (view.servers.length === 1 && view.servers[0]!.nodeId === me) return next; // sole server: owns all
    const words = keyWords(keys);
    if (view.replicas === 1) {
      // No chains: only check ownership (no array or closure per key; this runs for every key).
      for (let i = 0; i < keys.length; i++) {
        const owner = view.ownerOfWords(table, words[2 * i]!, words[2 * i + 1]!);
        if (owner.nodeId !== me) throw this.wrongOwner(keys[i]!, table, owner.nodeId);
      }
      return next;
    }
    for (let i = 0; i < keys.length; i++) {
      const chain = view.chainOf(table, words[2 * i]!, words[2 * i + 1]!);
      const at = chain.findIndex((m) => m.nodeId === me);
      if (at < 0 || (mustBeHead && at !== 0)) throw this.wrongOwner(keys[i]!, table, chain[0]?.nodeId);
      const to = chain[at + 1];
      if (to) {
        let list = next.get(to.nodeId);
        if (!list) next.set(to.nodeId, (list = []));
        list.push(i);
      }
    }
    return next;
  }

  /** Sends each next server (from nextHops) its rows of push `p`, as a ReplicaPush from `origin`. */
  async forward(next: Map<string, number[]>, p: PushBody, origin: string, dim: number): Promise<void> {
    await Promise.all([...next].map(([serverId, idx]) =>
      this.ctx.member.server(serverId).request({ type: 'replicaPush', push: subsetPush(p, idx, dim), origin })));
  }

  /**
   * Copies every row this server heads to the chain members that did not hold it under `old`
   * (and that `skip` does not name: a take-over's source for that key, which holds it), with the
   * BSP sums of clocks not applied yet of every such key, including keys that have no row yet
   * (first pushed in a clock still open): those sums alone were once left out, so the new
   * replica missed that clock's update of the row, and a take-over from it after the head failed
   * served the row one update behind (`fault-partition-server`, take-over-source-cut, 2026-12-02).
   */
  rereplicate(old: ClusterView, skip?: (table: number, key: number, serverId: string) => boolean): void {
    const view = this.ctx.member.view, me = this.ctx.member.nodeId;
    if (view.replicas < 2 || old.servers.length === 0) return;
    const others = view.servers.filter((m) => m.nodeId !== me).map((m) => m.nodeId);
    for (const t of this.ctx.tables.values()) {
      if (t.store.rows === 0 && t.pending.size === 0) continue;
      /** The servers key (lo, hi) moves to, if this server heads it: chain members now, not under `old`, not `skip`ped. */
      const movesTo = (lo: number, hi: number): string[] => {
        const chain = view.chainOf(t.spec.id, lo, hi);
        if (chain[0]?.nodeId !== me) return [];
        const before = old.chainOf(t.spec.id, lo, hi);
        return chain.slice(1).map((m) => m.nodeId)
          .filter((id) => !before.some((b) => b.nodeId === id) && !skip?.(t.spec.id, keyNumber(lo, hi), id));
      };
      // The rows: one pass, each row's chains looked up once (a view change may see millions).
      const rows = t.store.exportRows();
      const words = keyWords(rows.keys);
      const targets = new Map<string, number[]>(others.map((id) => [id, []]));
      for (let i = 0; i < rows.keys.length; i++) {
        for (const id of movesTo(words[2 * i]!, words[2 * i + 1]!)) targets.get(id)?.push(i);
      }
      for (const [serverId, idx] of targets) {
        const failed = (e: unknown) => this.ctx.log.warn('row copy failed', { to: serverId, error: (e as Error).message });
        const send = (body: BodyOf<'copyRows' | 'copyPending'>) => {
          this.copiesInFlight++;
          void this.ctx.member.server(serverId).request(body).catch(failed).finally(() => { this.copiesInFlight--; });
        };
        if (idx.length > 0) {
          this.ctx.log.info('copying rows to new replica', { table: t.spec.name, to: serverId, rows: idx.length });
          send(copyRowsBody(t, rows, idx));
        }
        // And the BSP sums of clocks not yet applied of the keys moving there: the new replica
        // must apply them too, or a failure of this server before the clock completes would lose them.
        for (const [clock, acc] of t.pending) {
          const snap = acc.snapshot((lo, hi) => movesTo(lo, hi).includes(serverId));
          if (snap.keys.length === 0) continue;
          // With the pushes summed into them: the same push forwarded to the replica later (a
          // worker's retry after this view change) must not be counted on top of the copy.
          const inSnap = new Set(keysToNumbers(snap.keys));
          const applied = this.ctx.dedup.appliedRows(t.spec.id, (k) => inSnap.has(k));
          send({ type: 'copyPending', table: t.spec.id, clock, keys: snap.keys, sums: snap.sums, applied });
        }
      }
    }
  }

  /** Rows copied in by the head of a chain this server just joined (see rereplicate). */
  copyIn(c: BodyOf<'copyRows'>): Body {
    const t = this.ctx.tables.get(c.table);
    this.requireInChains(c.table, c.keys);
    importCopiedRows(t, c);
    return { type: 'ok' };
  }

  /**
   * Rows with their optimizer state read by a worker (ReadRows: the hot rows it will hold), of
   * keys this server holds in its chains; a row not held yet reads as it would be created.
   */
  readOut(r: BodyOf<'readRows'>): BodyOf<'copyRows'> {
    const t = this.ctx.tables.get(r.table);
    this.requireInChains(r.table, r.keys);
    const rows = t.store.readRows(r.keys);
    return copyRowsBody(t, rows, Array.from({ length: r.keys.length }, (_, i) => i));
  }

  /** Unapplied BSP sums copied in by the head of a chain this server just joined (see rereplicate). */
  copyPendingIn(c: BodyOf<'copyPending'>): Body {
    const t = this.ctx.tables.get(c.table);
    if (t.spec.consistency !== Consistency.BSP) throw new RpcError(ErrorCode.Unsupported, `copyPending for table ${t.spec.name}, which is not BSP`);
    refuse(checkKeys(c.keys));
    this.requireInChains(c.table, c.keys);
    if (c.sums.length !== c.keys.length * t.spec.dim) throw new RpcError(ErrorCode.BadDimension, `copyPending of ${c.keys.length} rows has ${c.sums.length} sums, dim ${t.spec.dim}`);
    refuse(checkFinite(c.sums, 'copyPending sum'));
    if (!Number.isSafeInteger(c.clock) || c.clock < 0) throw new RpcError(ErrorCode.Malformed, `copyPending of table ${t.spec.name} names clock ${c.clock}, not a clock number (a non-negative integer)`);
    for (const a of c.applied) refuse(checkKeys(a.keys));
    // The pushes in these sums count as applied here: a retry forwarded later adds nothing.
    for (const a of c.applied) this.ctx.dedup.record(a.sender, a.seq, a.keys, c.table);
    if (this.ctx.gate.takeCopiedSums(t, c.clock, c.keys, c.sums) === 'applied') {
      this.ctx.log.info('copied BSP sums applied on arrival (this server had applied their clock already)', { table: t.spec.name, clock: c.clock, rows: c.keys.length });
    } else {
      this.ctx.gate.applyReady();
    }
    return { type: 'ok' };
  }

  /** Copies are only of keys this server holds in its chains (WrongOwner otherwise, naming the key's chain head). */
  private requireInChains(table: number, keys: BigUint64Array): void {
    refuse(checkKeys(keys));
    this.nextHops(table, keys, false);
  }

  private wrongOwner(key: bigint, table: number, owner: string | undefined): RpcError {
    return new RpcError(ErrorCode.WrongOwner, `key ${key} of table ${table} belongs to ${owner} in view ${this.ctx.member.view.epoch}, not ${this.ctx.member.nodeId}`);
  }
}

/** Rows `idx` of push `p` (the same push, sent as f32, when idx is every row). */
export function subsetPush(p: PushBody, idx: ArrayLike<number>, dim: number): PushBody {
  if (idx.length === p.keys.length) return { ...p, format: 'f32' };
  const keys = gatherKeys(p.keys, idx); // word by word: no BigInt per key
  const values = new Float32Array(idx.length * dim);
  for (let i = 0; i < idx.length; i++) {
    const k = idx[i]!;
    values.set(p.values.subarray(k * dim, (k + 1) * dim), i * dim);
  }
  return { ...p, keys, values, format: 'f32' };
}
