// A parameter server: holds the shards of every declared table that the cluster view assigns to
// it, answers pulls, applies pushes through the table's update function under the table's
// consistency model, and writes/reads checkpoints. Everything a peer sends is validated before
// any table is touched; a bad request gets an error naming the cause and changes nothing.
import { Listener, Peer, RpcError, type Connection, type LinkLimits } from '../transport/index.ts';
import type { MemberMsg } from '../wire/codec.ts';
import { Consistency, ErrorCode, Role, type Body, type ClusterViewMsg, type Envelope, type PushBody, type TableSpecMsg } from '../wire/codec.ts';
import { ClusterView } from '../cluster/cluster-view.ts';
import { TableStore, checkTableConfig, type TableConfig } from './table-store.ts';
import { checkFinite, checkKeys, pushProblem, refuse } from './request-checks.ts';
import { keyAt, keyHi, keyLo, keyNumber, keysFromNumbers, keysToNumbers, keyWords } from '../keys/keys.ts';
import { loadOptimizerModule } from './optimizers.ts';
import { ClockTable } from './clock-table.ts';
import { BspAccumulator } from './bsp-accumulator.ts';
import { PushDeduper } from './push-deduper.ts';
import { saveServerCheckpoint, restoreServerCheckpoint } from './checkpointing.ts';
import { createLogger } from '../util/log.ts';
import { resolve, sep } from 'node:path';

export interface PsServerOptions {
  secret: Uint8Array;
  schedulerUrl: string;
  host?: string;
  port?: number;
  nodeId?: string;
  maxFrameBytes?: number;
  /** Bounds on what a peer's link may cost (docs/wire.md, "Bounds"). */
  limits?: LinkLimits;
  heartbeatIntervalMs?: number;
  /** User modules with custom update functions, loaded before any table is declared. */
  optimizerModules?: string[];
  /** How long a request from a newer view epoch waits for that view to arrive here. */
  viewWaitMs?: number;
  /**
   * Checkpoint and restore requests may only name directories inside this one (default: the
   * HYBRIDPS_CHECKPOINT_ROOT variable, else the working directory), so a peer cannot make a
   * server write or read files elsewhere.
   */
  checkpointRoot?: string;
}

export interface TableState {
  spec: TableSpecMsg;
  store: TableStore;
  /** BSP: gradients of clocks not yet applied, by clock. */
  pending: Map<number, BspAccumulator>;
  appliedClock: number;
}


const EMPTY = new Float32Array(0);

export class PsServer {
  readonly tables = new Map<number, TableState>();
  readonly nodeId: string;
  readonly stats = {
    pulls: 0, pushes: 0, rowsPulled: 0, rowsPushed: 0, bytesIn: 0, bytesOut: 0,
    applyMs: 0, rejected: 0, duplicatePushes: 0, clocks: 0,
  };
  view = ClusterView.empty();
  /** The view before the current one: who held a key before the last change (handoffs). */
  private prevView = ClusterView.empty();
  /** Set while this server, new to a running cluster, takes over its rows: data requests wait. */
  private handoff: Promise<void> | null = null;
  /** Row lists being handed to a joining server, by `${server}:${table}` (paged). */
  private handoffRows = new Map<string, { rows: ReturnType<TableStore['exportRows']>; idx: number[] }>();
  private listener!: Listener;
  private scheduler!: Peer;
  private clocks = new ClockTable();
  private dedup = new PushDeduper();
  private viewWaiters: { epoch: number; resolve: () => void }[] = [];
  /** Links to other servers, for forwarding down replication chains and copying rows. */
  private serverPeers = new Map<string, Peer>();
  private heartbeat?: NodeJS.Timeout;
  private readonly log;

  private constructor(private readonly opts: PsServerOptions) {
    this.nodeId = opts.nodeId ?? `server-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.log = createLogger(this.nodeId);
  }

  static async start(opts: PsServerOptions): Promise<PsServer> {
    const s = new PsServer(opts);
    for (const m of opts.optimizerModules ?? []) await loadOptimizerModule(m);
    s.listener = await Listener.listen({
      ...opts.limits, nodeId: s.nodeId, secret: opts.secret, host: opts.host, port: opts.port,
      maxFrameBytes: opts.maxFrameBytes ?? opts.limits?.maxFrameBytes, epoch: () => s.view.epoch,
      onRequest: (env, conn) => s.onRequest(env, conn),
      onRejected: (why) => { s.stats.rejected++; s.log.warn('peer refused', { why }); },
    });
    let schedulerBeat = 0;
    s.scheduler = new Peer(opts.schedulerUrl, {
      nodeId: s.nodeId, secret: opts.secret, role: Role.Server, address: s.listener.url,
      epoch: () => s.view.epoch, connectAttempts: 20,
      onRequest: (env) => s.onSchedulerMessage(env),
      onConnect: (_c, welcome) => { schedulerBeat = welcome.heartbeatMs ?? 0; if (welcome.view) s.setView(welcome.view); },
    });
    await s.scheduler.connection();
    const interval = opts.heartbeatIntervalMs ?? (schedulerBeat || 1000); // the scheduler's pace unless set here
    s.heartbeat = setInterval(() => {
      s.scheduler.notify({ type: 'heartbeat', nodeId: s.nodeId, clock: -1 }).catch((e) => s.log.warn('heartbeat failed', { error: (e as Error).message }));
    }, interval);
    s.heartbeat.unref();
    s.log.info('started', { url: s.listener.url, scheduler: opts.schedulerUrl });
    return s;
  }

  get url(): string { return this.listener.url; }

  /** Resolves when this server serves its keys (at once, unless it is taking rows over). */
  whenServing(): Promise<void> { return this.handoff ?? Promise.resolve(); }

  private onSchedulerMessage(env: Envelope): void {
    if (env.body.type === 'clusterView') this.setView(env.body.view);
  }

  private setView(msg: ClusterViewMsg): void {
    if (msg.epoch <= this.view.epoch) return;
    const old = this.view;
    this.prevView = old;
    this.view = new ClusterView(msg);
    // First view, and other servers already run: the rows this server now heads are theirs to
    // hand over (copy, then serve). A fresh cluster's servers just find nothing to take.
    if (old.epoch === 0 && this.tables.size === 0) {
      const others = this.view.servers.filter((m) => m.nodeId !== this.nodeId).map((m) => m.nodeId);
      if (others.length > 0) this.handoff = this.takeOver(others).finally(() => { this.handoff = null; });
    }
    for (const [id, peer] of this.serverPeers) {
      if (!this.view.servers.some((m) => m.nodeId === id)) { void peer.close(); this.serverPeers.delete(id); }
    }
    this.rereplicate(old);
    this.clocks.setLiveWorkers(this.view.workers.map((w) => w.rank));
    this.log.info('view changed', { epoch: msg.epoch, servers: this.view.servers.length, workers: this.view.workers.length });
    this.viewWaiters = this.viewWaiters.filter((w) => (w.epoch <= msg.epoch ? (w.resolve(), false) : true));
    this.onClocksChanged();
  }

  /** A request made under a newer view waits (briefly) until this server has that view too. */
  private async viewAtLeast(epoch: number): Promise<void> {
    if (epoch <= this.view.epoch) return;
    if (epoch > this.view.epoch + 1000) throw new RpcError(ErrorCode.StaleEpoch, `request from view ${epoch}, far beyond this server's ${this.view.epoch}`);
    const wait = new Promise<void>((resolve) => this.viewWaiters.push({ epoch, resolve }));
    const timeout = new Promise<never>((_, reject) => setTimeout(
      () => reject(new RpcError(ErrorCode.StaleEpoch, `request from view ${epoch}, this server has ${this.view.epoch}`)),
      this.opts.viewWaitMs ?? 3_000).unref());
    await Promise.race([wait, timeout]);
  }

  /** Replication traffic comes from servers only: a worker could otherwise speak for another worker. */
  private fromServer(conn: Connection, what: string): void {
    if (conn.peerRole !== Role.Server) throw new RpcError(ErrorCode.Unsupported, `${what} from ${conn.peerId}, which is not a server`);
  }

  private table(id: number): TableState {
    const t = this.tables.get(id);
    if (!t) throw new RpcError(ErrorCode.UnknownTable, `unknown table ${id} (declared: ${[...this.tables.keys()].join(', ') || 'none'})`);
    return t;
  }

  private async onRequest(env: Envelope, conn: Connection): Promise<Body | void> {
    await this.viewAtLeast(env.epoch);
    const body = env.body;
    try {
      switch (body.type) {
        case 'declareTables': return this.declare(body.tables);
        case 'pull': if (this.handoff) await this.handoff; return await this.pull(body);
        case 'push': if (this.handoff) await this.handoff; return await this.push(body, conn.peerId, 0);
        case 'handoffRequest': return this.handOver(body, conn);
        case 'replicaPush': this.fromServer(conn, body.type); return await this.push(body.push, body.origin, 1);
        case 'copyRows': return this.copyRows(body); // also from workers: assignRange seeds dense rows
        case 'copyPending': this.fromServer(conn, body.type); return this.copyPending(body);
        case 'clock': return this.clock(body.worker, body.clock);
        case 'checkpoint': return await this.checkpoint(this.checkpointDir(body.dir), body.step);
        case 'restore': return await this.restore(this.checkpointDir(body.dir));
        case 'statsRequest': return { type: 'statsReply', json: JSON.stringify(this.status()) };
        default: throw new RpcError(ErrorCode.Unsupported, `a server does not handle ${body.type}`);
      }
    } catch (e) {
      this.stats.rejected++;
      throw e;
    }
  }

  private declare(specs: TableSpecMsg[]): Body {
    // Validate every spec before creating any table, so a bad declaration changes nothing.
    const fresh: TableConfig[] = [];
    for (const s of specs) {
      const have = this.tables.get(s.id);
      if (have) {
        if (!sameSpec(have.spec, s)) throw new RpcError(ErrorCode.Conflict, `table ${s.id} (${s.name}) is already declared with a different spec`);
        continue;
      }
      const cfg: TableConfig = {
        id: s.id, name: s.name, dim: s.dim, init: s.init as TableConfig['init'], initScale: s.initScale, seed: s.seed,
        optimizer: s.optimizer, hyper: s.hyper,
      };
      const bad = checkTableConfig(cfg);
      if (bad) throw new RpcError(ErrorCode.Unsupported, bad);
      fresh.push(cfg);
    }
    for (const cfg of fresh) {
      const spec = specs.find((s) => s.id === cfg.id)!;
      this.tables.set(cfg.id, { spec, store: new TableStore(cfg), pending: new Map(), appliedClock: -1 });
      this.log.info('table declared', { id: cfg.id, name: cfg.name, dim: cfg.dim, optimizer: cfg.optimizer, consistency: Consistency[spec.consistency] });
    }
    return { type: 'declareTablesReply', tables: [...this.tables.values()].map((t) => t.spec) };
  }

  private async pull(p: Extract<Body, { type: 'pull' }>): Promise<Body> {
    const t = this.table(p.table);
    refuse(checkKeys(p.keys));
    this.nextHops(p.table, p.keys, true); // only the head answers, so every reader sees one copy
    if (p.clock >= 0) {
      const c = t.spec.consistency;
      if (c === Consistency.BSP) await this.clocks.waitFor(p.clock);
      else if (c === Consistency.SSP) await this.clocks.waitFor(p.clock - t.spec.staleness);
    }
    this.stats.pulls++;
    this.stats.rowsPulled += p.keys.length;
    this.stats.bytesOut += p.keys.length * t.spec.dim * 4;
    // The rows are copied straight into the reply frame when it is encoded (keys view the request
    // frame, which ws does not reuse).
    const keys = p.keys;
    return {
      type: 'pullReply', table: p.table, dim: t.spec.dim, values: EMPTY, f16: p.f16,
      writer: { length: keys.length * t.spec.dim, write: (dst) => { t.store.pull(keys, dst); } },
    };
  }

  /**
   * A push, from a worker (`hop` 0: this server must head every key's chain) or forwarded down
   * a replication chain (`hop` 1). Applied locally once per (sender, seq), then forwarded to the
   * next server of each key's chain; acknowledged only when the chain's tail has it.
   */
  private async push(p: PushBody, sender: string, hop: number): Promise<Body> {
    const t = this.table(p.table);
    refuse(pushProblem(t.spec.dim, p.keys, p.values));
    // Only the rows this server has not applied under (sender, seq) yet: a retry of a push may
    // arrive here whole, in part, or as a part that another head already forwarded (see PushDeduper).
    const fresh = this.dedup.unapplied(sender, p.seq, p.keys);
    const freshRows = fresh ? fresh.length : p.keys.length;
    if (t.spec.consistency === Consistency.BSP) {
      if (p.clock < 0) throw new RpcError(ErrorCode.Malformed, 'a BSP push needs the clock it belongs to');
      if (p.clock <= t.appliedClock && freshRows > 0) {
        throw new RpcError(ErrorCode.StaleEpoch, `clock ${p.clock} of table ${t.spec.name} was already applied`);
      }
    }
    const next = this.nextHops(p.table, p.keys, hop === 0);
    const duplicate = freshRows === 0;
    if (duplicate) {
      this.stats.duplicatePushes++;
    } else {
      const part = fresh ? subsetPush(p, Array.from(fresh), t.spec.dim) : p;
      if (t.spec.consistency === Consistency.BSP) {
        pendingSums(t, p.clock).add(part.keys, part.values);
      } else {
        const t0 = performance.now();
        t.store.apply(part.keys, part.values);
        this.stats.applyMs += performance.now() - t0;
      }
      this.dedup.record(sender, p.seq, part.keys, p.table);
      this.stats.pushes++;
      this.stats.rowsPushed += part.keys.length;
      this.stats.bytesIn += part.values.byteLength;
    }
    // Forward even a duplicate: the first attempt may have died before reaching the tail.
    await Promise.all([...next].map(([serverId, idx]) => {
      const sub = subsetPush(p, idx, t.spec.dim);
      return this.serverPeer(serverId).request({ type: 'replicaPush', push: sub, origin: sender });
    }));
    return { type: 'pushAck', seq: p.seq, applied: !duplicate && t.spec.consistency !== Consistency.BSP };
  }

  /**
   * For each key, checks this server's place in its chain (the head, for a worker's request) and
   * groups the keys by the chain's next server. Throws WrongOwner so the sender re-routes.
   */
  private nextHops(table: number, keys: BigUint64Array, mustBeHead: boolean): Map<string, number[]> {
    const next = new Map<string, number[]>();
    if (this.view.servers.length === 1 && this.view.servers[0]!.nodeId === this.nodeId) return next; // sole server: owns all
    const words = keyWords(keys);
    const r = this.view.replicas;
    if (r === 1) {
      // No chains: only check ownership (no array or closure per key; this runs for every key).
      for (let i = 0; i < keys.length; i++) {
        const owner = this.view.ownerOfWords(table, words[2 * i]!, words[2 * i + 1]!);
        if (owner.nodeId !== this.nodeId) throw this.wrongOwner(keys[i]!, table, owner.nodeId);
      }
      return next;
    }
    for (let i = 0; i < keys.length; i++) {
      const chain = this.view.chainOf(table, words[2 * i]!, words[2 * i + 1]!);
      const at = chain.findIndex((m) => m.nodeId === this.nodeId);
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

  private wrongOwner(key: bigint, table: number, owner: string | undefined): RpcError {
    return new RpcError(ErrorCode.WrongOwner, `key ${key} of table ${table} belongs to ${owner} in view ${this.view.epoch}, not ${this.nodeId}`);
  }

  private serverPeer(nodeId: string): Peer {
    let p = this.serverPeers.get(nodeId);
    if (!p) {
      const m = this.view.servers.find((s) => s.nodeId === nodeId);
      if (!m) throw new RpcError(ErrorCode.StaleEpoch, `server ${nodeId} is not in view ${this.view.epoch}`);
      p = new Peer(m.address, { nodeId: this.nodeId, secret: this.opts.secret, role: Role.Server, epoch: () => this.view.epoch, connectAttempts: 4 });
      this.serverPeers.set(nodeId, p);
    }
    return p;
  }

  /**
   * After a view change, copies every row this server heads to the chain members that did not
   * hold it before (a backup promoted to owner gets a new backup), so R copies exist again.
   */
  private rereplicate(old: ClusterView): void {
    if (this.view.replicas < 2 || old.servers.length === 0) return;
    for (const t of this.tables.values()) {
      if (t.store.rows === 0) continue;
      const rows = t.store.exportRows();
      const words = new Uint32Array(rows.keys.buffer, rows.keys.byteOffset, rows.keys.length * 2);
      const targets = new Map<string, number[]>();
      for (let i = 0; i < rows.keys.length; i++) {
        const lo = words[2 * i]!, hi = words[2 * i + 1]!;
        const chain = this.view.chainOf(t.spec.id, lo, hi);
        if (chain[0]?.nodeId !== this.nodeId) continue;
        const before = new Set(old.chainOf(t.spec.id, lo, hi).map((m: MemberMsg) => m.nodeId));
        for (const m of chain.slice(1)) {
          if (before.has(m.nodeId)) continue;
          let list = targets.get(m.nodeId);
          if (!list) targets.set(m.nodeId, (list = []));
          list.push(i);
        }
      }
      for (const [serverId, idx] of targets) {
        const body = copyRowsBody(t, rows, idx);
        this.log.info('copying rows to new replica', { table: t.spec.name, to: serverId, rows: idx.length });
        const peer = this.serverPeer(serverId);
        const failed = (e: unknown) => this.log.warn('row copy failed', { to: serverId, error: (e as Error).message });
        peer.request(body).catch(failed);
        // And the BSP sums of clocks not yet applied for those rows: the new replica must apply
        // them too, or a failure of this server before the clock completes would lose them.
        const moving = new Set(idx.map((i) => keyAt(words, i)));
        for (const [clock, acc] of t.pending) {
          const snap = acc.snapshot((lo, hi) => moving.has(keyNumber(lo, hi)));
          if (snap.keys.length === 0) continue;
          // With the pushes summed into them: the same push forwarded to the replica later (a
          // worker's retry after this view change) must not be counted on top of the copy.
          const inSnap = new Set(keysToNumbers(snap.keys));
          const applied = this.dedup.appliedRows(t.spec.id, (k) => inSnap.has(k));
          peer.request({ type: 'copyPending', table: t.spec.id, clock, keys: snap.keys, sums: snap.sums, applied }).catch(failed);
        }
      }
    }
  }

  private copyRows(c: Extract<Body, { type: 'copyRows' }>): Body {
    const t = this.table(c.table);
    const n = c.keys.length, d = t.spec.dim, sc = t.store.slotCount;
    refuse(checkKeys(c.keys));
    // slotCount 0 with no slots and no steps: values only (an assignment), optimizer state fresh.
    const valuesOnly = c.slotCount === 0 && c.slots.length === 0 && c.steps.length === 0;
    if (c.values.length !== n * d || (!valuesOnly && (c.slotCount !== sc || c.slots.length !== n * d * sc || c.steps.length !== n))) {
      throw new RpcError(ErrorCode.BadDimension, `copyRows of ${n} rows: values ${c.values.length}, slots ${c.slots.length} (${c.slotCount}), steps ${c.steps.length} do not match dim ${d} with ${sc} slots`);
    }
    refuse(checkFinite(c.values, 'copyRows value'));
    const slots = valuesOnly ? [] : Array.from({ length: sc }, (_, s) => c.slots.slice(s * n * d, (s + 1) * n * d));
    t.store.importRows({ keys: c.keys.slice(), values: c.values.slice(), slots, steps: valuesOnly ? undefined : c.steps.slice() });
    return { type: 'ok' };
  }

  /** Unapplied BSP sums copied in by the head of a chain this server just joined (see rereplicate). */
  private copyPending(c: Extract<Body, { type: 'copyPending' }>): Body {
    const t = this.table(c.table);
    if (t.spec.consistency !== Consistency.BSP) throw new RpcError(ErrorCode.Unsupported, `copyPending for table ${t.spec.name}, which is not BSP`);
    refuse(checkKeys(c.keys));
    if (c.sums.length !== c.keys.length * t.spec.dim) throw new RpcError(ErrorCode.BadDimension, `copyPending of ${c.keys.length} rows has ${c.sums.length} sums, dim ${t.spec.dim}`);
    refuse(checkFinite(c.sums, 'copyPending sum'));
    for (const a of c.applied) refuse(checkKeys(a.keys));
    // The pushes in these sums count as applied here: a retry forwarded later adds nothing.
    for (const a of c.applied) this.dedup.record(a.sender, a.seq, a.keys, c.table);
    if (!Number.isSafeInteger(c.clock) || c.clock <= t.appliedClock) return { type: 'ok' }; // already applied here
    pendingSums(t, c.clock).add(c.keys, c.sums);
    this.onClocksChanged();
    return { type: 'ok' };
  }

  private clock(worker: number, clock: number): Body {
    this.clocks.advance(worker, clock);
    this.stats.clocks++;
    this.onClocksChanged();
    // Answer with this worker's clock as the server sees it (a joining worker starts at the slowest).
    return { type: 'clockAck', clock: this.clocks.clockOf(worker) };
  }

  /** Applies every BSP clock all live workers have finished, then lets waiting pulls through. */
  private onClocksChanged(): void {
    const min = this.clocks.minClock();
    for (const t of this.tables.values()) {
      if (t.spec.consistency !== Consistency.BSP) continue;
      const ready = [...t.pending.keys()].filter((c) => c < min).sort((a, b) => a - b);
      for (const c of ready) {
        const { keys, grads } = t.pending.get(c)!.drain();
        t.pending.delete(c);
        const t0 = performance.now();
        t.store.apply(keys, grads);
        this.stats.applyMs += performance.now() - t0;
        t.appliedClock = c;
      }
    }
    this.clocks.release();
  }

  // -------------------------------------------------------------------------------------------
  // Handoff: a server joining a running cluster (or coming back empty) copies the rows it now
  // heads from the servers that held them, with the state around them (table specs, worker
  // clocks, unapplied BSP sums, applied push numbers), before it answers any pull or push. The
  // old holders refuse those keys from the moment they see the new view (WrongOwner), so what
  // they hand over is final: no update is lost, and none is applied twice.

  private async takeOver(from: string[]): Promise<void> {
    const t0 = performance.now();
    let rows = 0;
    await Promise.all(from.map(async (serverId) => {
      try {
        const n = await this.takeOverFrom(serverId);
        rows += n;
      } catch (e) {
        if (!this.view.servers.some((m) => m.nodeId === serverId)) return; // it left: nothing to take from it
        this.log.error('handoff failed: rows held by this server may be missing', { from: serverId, error: (e as Error).message });
      }
    }));
    this.onClocksChanged(); // BSP sums taken over for clocks every worker has finished
    this.log.info('handoff complete', { from: from.join(','), rows, ms: Math.round(performance.now() - t0) });
  }

  private async takeOverFrom(serverId: string): Promise<number> {
    const peer = this.serverPeer(serverId);
    const metaReply = await peer.request({ type: 'handoffRequest', table: HANDOFF_META, offset: 0, limit: 0 }, 60_000, 'statsReply');
    const meta = JSON.parse(metaReply.body.json) as HandoffMeta;
    this.declare(meta.tables.map((t) => ({ ...t, seed: BigInt(t.seed) })));
    for (const [rank, clock] of meta.clocks) this.clocks.advance(rank, clock);
    for (const [sender, seqs] of meta.wholePushes) for (const q of seqs) this.dedup.record(sender, q);
    for (const a of meta.applied) this.dedup.record(a.sender, a.seq, keysFromNumbers(a.keys), a.table);
    for (const p of meta.pending) {
      pendingSums(this.table(p.table), p.clock).add(keysFromNumbers(p.keys), p.sums);
    }
    let rows = 0;
    for (const [table, count] of meta.rows) {
      for (let offset = 0; offset < count; offset += HANDOFF_PAGE) {
        const page = await peer.request({ type: 'handoffRequest', table, offset, limit: HANDOFF_PAGE }, 60_000, 'copyRows');
        this.copyRows(page.body);
        rows += page.body.keys.length;
      }
    }
    this.log.info('rows taken over', { from: serverId, rows, pendingClocks: meta.pending.length });
    return rows;
  }

  /** The other side: what this server holds of the keys the asking server heads now. */
  private handOver(req: Extract<Body, { type: 'handoffRequest' }>, conn: Connection): Body {
    const to = conn.peerId;
    if (conn.peerRole !== Role.Server || !this.view.servers.some((m) => m.nodeId === to)) {
      throw new RpcError(ErrorCode.Unsupported, `handoff requested by ${to}, which is not a server in view ${this.view.epoch}`);
    }
    const headIsTo = (table: number, lo: number, hi: number) => this.view.chainOf(table, lo, hi)[0]?.nodeId === to;
    // Only the previous chain of a key holds its current value (elsewhere a copy may be stale).
    const heldBefore = (table: number, lo: number, hi: number) =>
      this.prevView.servers.length === 0 || this.prevView.chainOf(table, lo, hi).some((m) => m.nodeId === this.nodeId);
    if (req.table === HANDOFF_META) {
      const meta: HandoffMeta = { tables: [], clocks: this.clocks.snapshot(), applied: [], wholePushes: this.dedup.wholePushes(), pending: [], rows: [] };
      for (const t of this.tables.values()) {
        meta.tables.push({ ...t.spec, seed: String(t.spec.seed) });
        const rows = t.store.exportRows();
        const w = keyWords(rows.keys);
        const idx: number[] = [];
        for (let i = 0; i < rows.keys.length; i++) if (headIsTo(t.spec.id, w[2 * i]!, w[2 * i + 1]!) && heldBefore(t.spec.id, w[2 * i]!, w[2 * i + 1]!)) idx.push(i);
        this.handoffRows.set(`${to}:${t.spec.id}`, { rows, idx });
        const moving = (k: number) => headIsTo(t.spec.id, keyLo(k), keyHi(k));
        for (const a of this.dedup.appliedRows(t.spec.id, moving)) meta.applied.push({ table: t.spec.id, sender: a.sender, seq: a.seq, keys: Array.from(a.keys, Number) });
        meta.rows.push([t.spec.id, idx.length]);
        // Unapplied BSP sums: only the previous head's count (replicas hold the same sums).
        const wasHead = (lo: number, hi: number) => {
          return headIsTo(t.spec.id, lo, hi) && (this.prevView.servers.length === 0 || this.prevView.chainOf(t.spec.id, lo, hi)[0]?.nodeId === this.nodeId);
        };
        for (const [clock, acc] of t.pending) {
          const snap = acc.snapshot(wasHead);
          if (snap.keys.length) meta.pending.push({ table: t.spec.id, clock, keys: Array.from(snap.keys, Number), sums: Array.from(snap.sums) });
        }
      }
      this.log.info('handing over', { to, rows: meta.rows.reduce((a, [, n]) => a + n, 0), pendingClocks: meta.pending.length });
      return { type: 'statsReply', json: JSON.stringify(meta) };
    }
    const t = this.table(req.table);
    const list = this.handoffRows.get(`${to}:${req.table}`);
    if (!list) throw new RpcError(ErrorCode.Malformed, `handoff rows of table ${req.table} requested before the handoff's first step`);
    const part = list.idx.slice(req.offset, req.offset + Math.min(req.limit, HANDOFF_PAGE));
    if (req.offset + part.length >= list.idx.length) this.handoffRows.delete(`${to}:${req.table}`);
    return copyRowsBody(t, list.rows, part);
  }

  private checkpointDir(dir: string): string {
    const root = resolve(this.opts.checkpointRoot ?? process.env.HYBRIDPS_CHECKPOINT_ROOT ?? process.cwd());
    const full = resolve(root, dir);
    if (full !== root && !full.startsWith(root + sep)) {
      throw new RpcError(ErrorCode.Unsupported, `checkpoint directory ${dir} is outside the server's checkpoint root ${root}`);
    }
    return full;
  }

  private async checkpoint(dir: string, step: number): Promise<Body> {
    const res = await saveServerCheckpoint(dir, this.nodeId, [...this.tables.values()], { step, epoch: this.view.epoch });
    this.log.info('checkpoint written', { dir, files: res.files.length, rows: res.rows });
    return { type: 'checkpointReply', files: res.files, rows: res.rows };
  }

  /** Loads every shard file in `dir` and keeps the rows this server owns under the current view. */
  private async restore(dir: string): Promise<Body> {
    const rows = await restoreServerCheckpoint(dir, this.tables, (table, lo, hi) =>
      this.view.chainOf(table, lo, hi).some((m) => m.nodeId === this.nodeId));
    this.log.info('checkpoint restored', { dir, rows });
    return { type: 'checkpointReply', files: [], rows };
  }

  /** Flat counters for /metrics: request counts, rows, bytes, apply time, queue depth, rows stored. */
  counters(): Record<string, number> {
    let rows = 0, memoryBytes = 0;
    for (const t of this.tables.values()) { rows += t.store.rows; memoryBytes += t.store.memoryBytes(); }
    return { ...this.stats, waitingPulls: this.clocks.waiting, rows, memoryBytes, epoch: this.view.epoch };
  }

  status(): object {
    return {
      role: 'server', nodeId: this.nodeId, url: this.url, epoch: this.view.epoch,
      stats: this.stats, waitingPulls: this.clocks.waiting,
      tables: [...this.tables.values()].map((t) => ({
        id: t.spec.id, name: t.spec.name, dim: t.spec.dim, rows: t.store.rows,
        bytesPerRow: t.store.bytesPerRow(), idealBytesPerRow: t.store.idealBytesPerRow(),
        pendingClocks: t.pending.size, appliedClock: t.appliedClock,
      })),
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    this.clocks.rejectAll(new RpcError(ErrorCode.Shutdown, 'server shutting down'));
    await this.scheduler.notify({ type: 'leave', nodeId: this.nodeId }).catch(() => {});
    await this.scheduler.close();
    await Promise.all([...this.serverPeers.values()].map((p) => p.close()));
    await this.listener.close();
    this.log.info('stopped');
  }
}

/** `table` of a HandoffRequest asking for the state that is not rows. */
const HANDOFF_META = 0xffff;
/** Rows per handoff page (one CopyRows frame): 4096 x dim 64 x (1 + 2 slots) floats is 3 MiB. */
const HANDOFF_PAGE = 4096;

interface HandoffMeta {
  tables: (Omit<TableSpecMsg, 'seed'> & { seed: string })[];
  clocks: [rank: number, clock: number][];
  /** Pushes applied to the rows handed over, per row; and older ones whose rows were let go, whole. */
  applied: { table: number; sender: string; seq: number; keys: number[] }[];
  wholePushes: [sender: string, seqs: number[]][];
  pending: { table: number; clock: number; keys: number[]; sums: number[] }[];
  rows: [table: number, count: number][];
}

/** The BSP sums of `clock` in table `t` not yet applied (created empty on first use). */
function pendingSums(t: TableState, clock: number): BspAccumulator {
  let acc = t.pending.get(clock);
  if (!acc) t.pending.set(clock, (acc = new BspAccumulator(t.spec.dim)));
  return acc;
}

function sameSpec(a: TableSpecMsg, b: TableSpecMsg): boolean {
  return a.name === b.name && a.dim === b.dim && a.init === b.init && a.initScale === b.initScale && a.seed === b.seed &&
    a.optimizer === b.optimizer && a.consistency === b.consistency && a.staleness === b.staleness &&
    JSON.stringify(a.hyper) === JSON.stringify(b.hyper);
}

function subsetPush(p: PushBody, idx: number[], dim: number): PushBody {
  if (idx.length === p.keys.length) return { ...p, f16: false };
  const keys = new BigUint64Array(idx.length);
  const values = new Float32Array(idx.length * dim);
  idx.forEach((k, i) => { keys[i] = p.keys[k]!; values.set(p.values.subarray(k * dim, (k + 1) * dim), i * dim); });
  return { ...p, keys, values, f16: false };
}

function copyRowsBody(t: TableState, rows: ReturnType<TableStore['exportRows']>, idx: number[]): Extract<Body, { type: 'copyRows' }> {
  const d = t.spec.dim, n = idx.length, sc = rows.slots.length;
  const keys = new BigUint64Array(n), values = new Float32Array(n * d), slots = new Float32Array(n * d * sc), steps = new Uint32Array(n);
  idx.forEach((k, i) => {
    keys[i] = rows.keys[k]!;
    values.set(rows.values.subarray(k * d, (k + 1) * d), i * d);
    for (let s = 0; s < sc; s++) slots.set(rows.slots[s]!.subarray(k * d, (k + 1) * d), s * n * d + i * d);
    steps[i] = rows.steps[k]!;
  });
  return { type: 'copyRows', table: t.spec.id, keys, values, slots, slotCount: sc, steps };
}
