// Handoff: a server joining a running cluster (or coming back empty) copies the rows it now heads
// from the servers that held them, with the state around them (table specs, worker clocks,
// unapplied BSP sums, applied push numbers), before it answers any pull or push. The old holders
// refuse those keys from the moment they see the new view (WrongOwner), so what they hand over is
// final: no update is lost, and none is applied twice. Both sides live here: `takeOver` (the
// joining server: a HandoffMetaRequest, then HandoffRequest pages) and `meta`/`page` (a holder).
import { RpcError } from '../transport/index.ts';
import { ErrorCode, type BodyOf, type HandoffTableMsg, type PendingSumsMsg } from '../wire/codec.ts';
import { ClusterView } from '../cluster/cluster-view.ts';
import { keyHi, keyLo, keyWords } from '../keys/keys.ts';
import type { TableRows } from './table-store.ts';
import type { ServerContext } from './server-context.ts';
import { copyRowsBody, importCopiedRows } from './row-copy.ts';
import { checkFinite, refuse } from './request-checks.ts';

/** Rows per handoff page (one CopyRows frame): 4096 x dim 64 x (1 + 2 slots) floats is 3 MiB. */
export const HANDOFF_PAGE = 4096;
const HANDOFF_TIMEOUT_MS = 60_000;

export class Handoff {
  /** The view before the current one: who held a key before the last change. */
  private prevView = ClusterView.empty();
  /** Set while this server takes over its rows: data requests wait for it. */
  private taking: Promise<void> | null = null;
  /** Row lists being handed to a joining server, by `${server}:${table}` (paged). */
  private outgoing = new Map<string, { rows: TableRows; idx: number[] }>();

  constructor(private readonly ctx: ServerContext) {}

  /** The take-over in progress, if any (pulls and pushes wait for it). */
  get inProgress(): Promise<void> | null { return this.taking; }

  /**
   * Call on every new view. When `joined` (this server's incarnation is new in this view: its
   * first view, or back after it was declared dead, starting empty: fencing.ts), with other
   * servers running, starts taking over.
   */
  onView(view: ClusterView, previous: ClusterView, joined: boolean): void {
    this.prevView = previous;
    if (joined) this.outgoing.clear();
    // A fresh cluster's servers just find nothing to take.
    if (joined && this.ctx.tables.size === 0) {
      const others = view.servers.filter((m) => m.nodeId !== this.ctx.member.nodeId).map((m) => m.nodeId);
      if (others.length > 0) {
        const taking = this.takeOver(others).finally(() => { if (this.taking === taking) this.taking = null; });
        this.taking = taking;
      }
    }
  }

  // ---- the joining server ----

  private async takeOver(from: string[]): Promise<void> {
    const t0 = performance.now();
    let rows = 0;
    await Promise.all(from.map(async (serverId) => {
      try {
        const n = await this.takeOverFrom(serverId); // (not `rows += await`: that reads rows before the wait)
        rows += n;
      } catch (e) {
        if (!this.ctx.member.view.servers.some((m) => m.nodeId === serverId)) return; // it left: nothing to take from it
        this.ctx.log.error('handoff failed: rows held by this server may be missing', { from: serverId, error: (e as Error).message });
      }
    }));
    this.ctx.gate.applyReady(); // BSP sums taken over for clocks every worker has finished
    // Every clock below the slowest worker's was applied where the rows came from: a push for
    // one of them arriving late (a retry whose record was let go) is refused, not summed again.
    const min = this.ctx.gate.clocks.minClock();
    if (Number.isFinite(min)) for (const t of this.ctx.tables.values()) t.appliedClock = Math.max(t.appliedClock, min - 1);
    this.ctx.log.info('handoff complete', { from: from.join(','), rows, ms: Math.round(performance.now() - t0) });
  }

  private async takeOverFrom(serverId: string): Promise<number> {
    const peer = this.ctx.member.server(serverId);
    const meta = (await peer.request({ type: 'handoffMetaRequest' }, HANDOFF_TIMEOUT_MS)).body;
    // Every sum finite before anything is taken (the pages' rows are checked as they are imported).
    for (const t of meta.tables) for (const p of t.pending) refuse(checkFinite(p.sums, `handoff sum of table ${t.spec.id} clock ${p.clock}`));
    this.ctx.tables.declare(meta.tables.map((t) => t.spec));
    for (const c of meta.clocks) this.ctx.gate.clocks.advance(c.rank, c.clock);
    for (const w of meta.wholePushes) for (const q of w.seqs) this.ctx.dedup.record(w.sender, q);
    for (const t of meta.tables) for (const a of t.applied) this.ctx.dedup.record(a.sender, a.seq, a.keys, t.spec.id);
    let pendingClocks = 0;
    for (const t of meta.tables) {
      for (const p of t.pending) { this.ctx.gate.addPending(this.ctx.tables.get(t.spec.id), p.clock, p.keys, p.sums); pendingClocks++; }
    }
    let rows = 0;
    for (const t of meta.tables) {
      for (let offset = 0; offset < t.rows; offset += HANDOFF_PAGE) {
        const page = await peer.request({ type: 'handoffRequest', table: t.spec.id, offset, limit: HANDOFF_PAGE }, HANDOFF_TIMEOUT_MS);
        importCopiedRows(this.ctx.tables.get(page.body.table), page.body);
        rows += page.body.keys.length;
      }
    }
    this.ctx.log.info('rows taken over', { from: serverId, rows, pendingClocks });
    return rows;
  }

  // ---- a former holder ----

  /** What this server holds of the keys server `to` heads now, but the rows (those follow in pages). */
  meta(to: string): BodyOf<'handoffMeta'> {
    this.requireServerInView(to);
    const view = this.ctx.member.view, prev = this.prevView, me = this.ctx.member.nodeId;
    const headIsTo = (table: number, lo: number, hi: number) => view.chainOf(table, lo, hi)[0]?.nodeId === to;
    // One source per key: the first server of its previous chain that is still in the view (its
    // head, unless that one is gone). Rows and unapplied BSP sums come from that one snapshot:
    // taking rows from every previous holder let a backup whose clock had not completed yet
    // overwrite the head's applied rows, or a head's unapplied sums land on a backup's applied
    // rows (an update lost or applied twice: `npm run chaos`, two kills, 2026-12-02).
    // (Not `to` itself: a server restarted before its death was noticed is in both views, empty.)
    const inView = new Set(view.servers.map((m) => m.nodeId).filter((id) => id !== to));
    const source = (table: number, lo: number, hi: number) =>
      prev.servers.length === 0 || prev.chainOf(table, lo, hi).find((m) => inView.has(m.nodeId))?.nodeId === me;
    const tables: HandoffTableMsg[] = [];
    let rowCount = 0, pendingClocks = 0;
    for (const t of this.ctx.tables.values()) {
      const id = t.spec.id;
      const rows = t.store.exportRows();
      const w = keyWords(rows.keys);
      const idx: number[] = [];
      for (let i = 0; i < rows.keys.length; i++) if (headIsTo(id, w[2 * i]!, w[2 * i + 1]!) && source(id, w[2 * i]!, w[2 * i + 1]!)) idx.push(i);
      this.outgoing.set(`${to}:${id}`, { rows, idx });
      const applied = this.ctx.dedup.appliedRows(id, (k) => headIsTo(id, keyLo(k), keyHi(k)));
      const pending: PendingSumsMsg[] = [];
      for (const [clock, acc] of t.pending) {
        const snap = acc.snapshot((lo, hi) => headIsTo(id, lo, hi) && source(id, lo, hi));
        if (snap.keys.length) pending.push({ table: id, clock, keys: snap.keys, sums: snap.sums, applied: [] });
      }
      tables.push({ spec: t.spec, rows: idx.length, applied, pending });
      rowCount += idx.length;
      pendingClocks += pending.length;
    }
    this.ctx.log.info('handing over', { to, rows: rowCount, pendingClocks });
    return {
      type: 'handoffMeta', tables,
      clocks: this.ctx.gate.clocks.snapshot().map(([rank, clock]) => ({ rank, clock })),
      wholePushes: this.ctx.dedup.wholePushes().map(([sender, seqs]) => ({ sender, seqs })),
    };
  }

  /** One page of the rows counted in `meta` for table `req.table`. */
  page(req: BodyOf<'handoffRequest'>, to: string): BodyOf<'copyRows'> {
    this.requireServerInView(to);
    const t = this.ctx.tables.get(req.table);
    const key = `${to}:${req.table}`;
    const list = this.outgoing.get(key);
    if (!list) throw new RpcError(ErrorCode.Malformed, `handoff rows of table ${req.table} requested before the handoff's first step`);
    const part = list.idx.slice(req.offset, req.offset + Math.min(req.limit, HANDOFF_PAGE));
    if (req.offset + part.length >= list.idx.length) this.outgoing.delete(key);
    return copyRowsBody(t, list.rows, part);
  }

  private requireServerInView(to: string): void {
    const view = this.ctx.member.view;
    if (!view.servers.some((m) => m.nodeId === to)) {
      throw new RpcError(ErrorCode.Unsupported, `handoff requested by ${to}, which is not a server in view ${view.epoch}`);
    }
  }
}
