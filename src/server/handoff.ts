// Handoff: a server joining a running cluster (or coming back empty) copies the rows it now heads
// from the servers that held them, with the state around them (table specs, worker clocks,
// unapplied BSP sums, applied push numbers), before it answers any pull or push. The old holders
// refuse those keys from the moment they see the new view (WrongOwner), so what they hand over is
// final: no update is lost, and none is applied twice. Both sides live here: `takeOver` (the
// joining server: a HandoffMetaRequest, then HandoffRequest pages) and `meta`/`page` (a holder).
import { RemoteError, RpcError } from '../transport/index.ts';
import { ErrorCode, type BodyOf, type HandoffTableMsg, type PendingSumsMsg } from '../wire/codec.ts';
import { ClusterView } from '../cluster/cluster-view.ts';
import { keyHi, keyLo, keysToNumbers, keyWords } from '../keys/keys.ts';
import type { TableRows } from './table-store.ts';
import type { ServerContext } from './server-context.ts';
import { copyRowsBody, importCopiedRows } from './row-copy.ts';
import { checkFinite, refuse } from './request-checks.ts';
import { describeLost, liveHolders, lostArcs, sourceOf } from './handoff-sources.ts';

/** Rows per handoff page (one CopyRows frame): 4096 x dim 64 x (1 + 2 slots) floats is 3 MiB. */
export const HANDOFF_PAGE = 4096;
const HANDOFF_TIMEOUT_MS = 60_000;

/** Between failed take-over attempts: the next view, or this long (a source that stays in the view but failed). */
const RETRY_WAIT_MS = 5_000;
/** How long a DataLost answer waits for a newer view before the take-over stops for good. */
const LOST_WAIT_MS = 10_000;

/** Re-replication of the taker's rows, put off until its take-over is done (Replication.rereplicate). */
/** The keys of one page taken over, and where from: 8 bytes a row, looked up only if the view moved meanwhile (finish). */
interface TakenPage { table: number; from: string; keys: Float64Array }

export type DeferredCopies = (old: ClusterView, skip: (table: number, key: number, serverId: string) => boolean) => void;

export class Handoff {
  /** The view before the current one: who held a key before the last change. */
  private prevView = ClusterView.empty();
  /**
   * Per server of the view (as this holder sees them): the basis of its take-over, the view
   * before its incarnation was first listed, whose chains name each key's source
   * (handoff-sources.ts). Kept while the incarnation lasts, so a retried take-over finds the
   * same sources' successors; `used` once a first attempt took it (a server restarted in place,
   * same `since`, takes over from the view before its new first attempt instead).
   */
  private basisOf = new Map<string, { view: ClusterView; since: number; used: boolean }>();
  /** The last `since` seen per server: one listed again under the same one (a restarted scheduler's views) has no new basis. */
  private sinceOf = new Map<string, number>();
  /** Set while this server takes over its rows: data requests wait for it (rejected for good: rows lost). */
  private taking: Promise<void> | null = null;
  /** Bumped at each new incarnation: an older take-over's loop stops touching state. */
  private generation = 0;
  /** Wakes a take-over waiting for the next view. */
  private wake: (() => void) | null = null;
  /** Row lists being handed to a joining server, by `${server}:${table}` (paged). */
  private outgoing = new Map<string, { rows: TableRows; idx: number[] }>();

  constructor(private readonly ctx: ServerContext, private readonly deferredCopies: DeferredCopies) {}

  /** The take-over in progress, if any (pulls and pushes wait for it). */
  get inProgress(): Promise<void> | null { return this.taking; }

  /**
   * Call on every new view. When `joined` (this server's incarnation is new in this view: its
   * first view, or back after it was declared dead, starting empty: fencing.ts), with other
   * servers running, starts taking over.
   */
  onView(view: ClusterView, previous: ClusterView, joined: boolean): void {
    this.prevView = previous;
    for (const m of view.servers) {
      const since = m.since ?? 0;
      // (Not from this server's first view: what came before it is unknown here.)
      if (this.sinceOf.get(m.nodeId) !== since && previous.epoch > 0) this.basisOf.set(m.nodeId, { view: previous, since, used: false });
      this.sinceOf.set(m.nodeId, since);
    }
    if (joined) { this.outgoing.clear(); this.generation++; }
    this.wake?.();
    // A fresh cluster's servers just find nothing to take.
    if (joined && this.ctx.tables.size === 0) {
      const others = view.servers.filter((m) => m.nodeId !== this.ctx.member.nodeId).map((m) => m.nodeId);
      if (others.length > 0) {
        this.ctx.gate.hold(); // nothing applied on part of the rows (ConsistencyGate.hold)
        const taking = this.takeOver(this.generation);
        this.taking = taking;
        // Rejected (rows lost): `taking` stays, so every data request is refused with its error from now on.
        taking.then(() => { if (this.taking === taking) this.taking = null; }, () => {});
      } else {
        this.taking = null;
        this.ctx.gate.resume();
      }
    }
  }

  // ---- the joining server ----

  /**
   * Takes this incarnation's rows over, from every other server of the view. When a source fails
   * mid-way (cut off, then declared dead: `npm run chaos -- --partitions`, 2026-12-02) what was
   * taken is dropped and the whole take-over runs again under the next view, where each key's
   * next live holder hands it (handoff-sources.ts); finishing with partial rows would serve rows
   * created afresh. A holder that finds keys no live server holds answers DataLost: thrown.
   */
  private async takeOver(generation: number): Promise<void> {
    const t0 = performance.now();
    const start = this.ctx.member.view;
    for (let attempt = 1; ; attempt++) {
      const view = this.ctx.member.view;
      if (attempt > 1) { this.ctx.tables.clear(); this.ctx.dedup.clear(); } // a failed attempt's partial state
      const from = view.servers.filter((m) => m.nodeId !== this.ctx.member.nodeId).map((m) => m.nodeId);
      const taken: TakenPage[] = [];
      let rows = 0;
      const failed: { from: string; error: string }[] = [];
      let lost: RemoteError | undefined;
      await Promise.all(from.map(async (serverId) => {
        try {
          const n = await this.takeOverFrom(serverId, taken, attempt > 1, generation); // (not `rows += await`: that reads rows before the wait)
          rows += n;
        } catch (e) {
          if (e instanceof RemoteError && e.code === ErrorCode.DataLost) lost = e;
          failed.push({ from: serverId, error: (e as Error).message });
        }
      }));
      if (generation !== this.generation) return; // registered again meanwhile: a newer take-over runs
      // Lost, unless a newer view comes soon: a restarted scheduler lists the servers again one by one.
      if (lost && !(await this.nextView(view.epoch, LOST_WAIT_MS))) {
        this.ctx.log.error('take-over stopped: rows this server heads are lost', { error: lost.message });
        throw new RpcError(ErrorCode.DataLost, `${this.ctx.member.nodeId} refuses its rows: ${lost.message}`);
      }
      if (failed.length === 0) {
        this.finish(start, taken);
        this.ctx.log.info('handoff complete', { from: from.join(','), rows, attempts: attempt, ms: Math.round(performance.now() - t0) });
        return;
      }
      this.ctx.log.warn('take-over incomplete: a source failed mid-way; dropping what was taken and taking the rows again under the next view',
        { epoch: view.epoch, attempt, failed: failed.map((f) => `${f.from}: ${f.error}`).join('; ') });
      await this.nextView(view.epoch);
      if (generation !== this.generation) return;
    }
  }

  /** Resolves at the next view after `epoch` (at once if it is here), or after `ms`: whether one came. */
  private async nextView(epoch: number, ms = RETRY_WAIT_MS): Promise<boolean> {
    if (this.ctx.member.view.epoch <= epoch) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        const self = this;
        function done() { clearTimeout(t); if (self.wake === done) self.wake = null; resolve(); }
        this.wake = done;
      });
    }
    return this.ctx.member.view.epoch > epoch;
  }

  /** After every source answered: BSP sums now complete are applied, clocks fixed, copies put off are sent. */
  private finish(start: ClusterView, taken: TakenPage[]): void {
    this.ctx.gate.resume(); // BSP sums taken over for clocks every worker has finished are applied now
    // Every clock below the slowest worker's was applied where the rows came from: a push for
    // one of them arriving late (a retry whose record was let go) is refused, not summed again.
    const min = this.ctx.gate.clocks.minClock();
    if (Number.isFinite(min)) for (const t of this.ctx.tables.values()) t.appliedClock = Math.max(t.appliedClock, min - 1);
    // The view moved during the take-over: the rows this server heads now go to chain members
    // that did not hold them when it joined, but not back to the server they came from.
    if (this.ctx.member.view.epoch === start.epoch) return;
    const cameFrom = new Map<number, Map<number, string>>();
    for (const p of taken) {
      let m = cameFrom.get(p.table);
      if (!m) cameFrom.set(p.table, (m = new Map()));
      for (const k of p.keys) m.set(k, p.from);
    }
    this.deferredCopies(start, (table, key, serverId) => cameFrom.get(table)?.get(key) === serverId);
  }

  private async takeOverFrom(serverId: string, taken: TakenPage[], retry: boolean, generation: number): Promise<number> {
    const peer = this.ctx.member.server(serverId);
    const current = () => { if (generation !== this.generation) throw new Error('superseded: this server registered again, and takes its rows over afresh'); };
    const meta = (await peer.request({ type: 'handoffMetaRequest', retry }, HANDOFF_TIMEOUT_MS)).body;
    current();
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
        current();
        importCopiedRows(this.ctx.tables.get(page.body.table), page.body);
        taken.push({ table: t.spec.id, from: serverId, keys: keysToNumbers(page.body.keys) });
        rows += page.body.keys.length;
      }
    }
    this.ctx.log.info('rows taken over', { from: serverId, rows, pendingClocks });
    return rows;
  }

  // ---- a former holder ----

  /** What this server holds of the keys server `to` heads now, but the rows (those follow in pages). */
  meta(to: string, retry = false): BodyOf<'handoffMeta'> {
    this.requireServerInView(to);
    const view = this.ctx.member.view, me = this.ctx.member.nodeId;
    const prev = this.basisFor(to, retry);
    const headIsTo = (table: number, lo: number, hi: number) => view.chainOf(table, lo, hi)[0]?.nodeId === to;
    // One source per key (handoff-sources.ts): the first server of its basis chain that is still
    // in the view as the same incarnation. (Never `to` itself: a server restarted before its
    // death was noticed is in both views, empty.) Keys no live server holds: DataLost.
    const live = liveHolders(prev, view, to);
    const lost = lostArcs(prev, view, to);
    if (lost.arcs.length > 0) {
      const names = [...this.ctx.tables.values()].map((t) => t.spec.name).join(', ');
      throw new RpcError(ErrorCode.DataLost, `the take-over by ${to} in view ${view.epoch} cannot be completed: rows are lost: ${describeLost(lost, prev)} ` +
        `(tables ${names || '(none declared here)'}); restore the job from its last checkpoint`);
    }
    const source = (table: number, lo: number, hi: number) => prev.servers.length === 0 || sourceOf(prev.chainOf(table, lo, hi), live) === me;
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

  /** The basis of `to`'s take-over (see basisOf); its first attempt fixes it. */
  private basisFor(to: string, retry: boolean): ClusterView {
    const since = this.ctx.member.view.servers.find((m) => m.nodeId === to)?.since ?? 0;
    if (since === 0) return this.prevView; // a scheduler without incarnations: the view before this one
    let b = this.basisOf.get(to);
    if (!b || b.since !== since || (b.used && !retry)) this.basisOf.set(to, (b = { view: this.prevView, since, used: false }));
    b.used = true;
    return b.view;
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
