// A parameter server (ps-lite's KVServer): holds the shards of every declared table that the
// cluster view assigns to it and answers its peers' requests. This class registers with the
// cluster, authorizes each request by its sender's role and identity (authorization.ts) and
// dispatches it to the unit that owns it: pulls and pushes (kv-handler.ts) under each table's
// consistency model (consistency.ts), replication chains (replication.ts), a joining server's handoff (handoff.ts), rows written
// from outside (row-copy.ts) and checkpoints (checkpointing.ts); fencing by view epoch (fencing.ts). Everything a peer sends is
// validated before any table is touched; a bad request gets an error naming the cause and
// changes nothing.
import { Listener, RpcError, type Connection, type LinkLimits, type TlsCredentials } from '../transport/index.ts';
import { ErrorCode, Role, type Body, type Envelope } from '../wire/codec.ts';
import type { ClusterView } from '../cluster/cluster-view.ts';
import { LatencyHistogram } from '../util/histogram.ts';
import type { MetricsSource } from '../util/metrics-http.ts';
import { ClusterMember } from '../cluster/member.ts';
import { createLogger } from '../util/log.ts';
import { loadOptimizerModule } from './optimizers.ts';
import { PushDeduper } from './push-deduper.ts';
import { newServerStats } from './server-stats.ts';
import type { ServerContext } from './server-context.ts';
import { Tables } from './tables.ts';
import { ConsistencyGate } from './consistency.ts';
import { Replication } from './replication.ts';
import { Handoff } from './handoff.ts';
import { KvHandler } from './kv-handler.ts';
import { ServerCheckpoints } from './checkpointing.ts';
import { assignRows } from './row-copy.ts';
import { authorize } from './authorization.ts';
import { Fence } from './fencing.ts';

export interface PsServerOptions {
  secret: Uint8Array;
  /** TLS credentials for its links (mutual TLS); absent: plain links. */
  tls?: TlsCredentials;
  schedulerUrl: string;
  host?: string;
  port?: number;
  /** host:port peers reach this server at, announced to the scheduler instead of where it listens (a proxy or NAT in between). */
  advertise?: string;
  nodeId?: string;
  maxFrameBytes?: number;
  /** Bounds on what a peer's link may cost (docs/wire.md, "Bounds"). */
  limits?: LinkLimits;
  heartbeatIntervalMs?: number;
  /** User modules with custom update functions, loaded before any table is declared. */
  optimizerModules?: string[];
  /** Called once when the scheduler publishes the job's end (`--job-workers`): the role exits. */
  onJobEnd?: () => void;
  /** How long a request from a newer view epoch waits for that view to arrive here. */
  viewWaitMs?: number;
  /**
   * Checkpoint and restore requests may only name directories inside this one (default: the
   * HYBRIDPS_CHECKPOINT_ROOT variable, else the working directory), so a peer cannot make a
   * server write or read files elsewhere.
   */
  checkpointRoot?: string;
}

/**
 * Requests that touch rows wait while this server takes over the rows it now heads. That covers
 * the copies and forwarded pushes other servers send it: a restarted server is a backup as soon as
 * the view lists it, but knows no tables until its take-over has declared them (without the wait
 * they failed with UnknownTable, the backup grew the rows afresh from later pushes, and a second
 * failure promoted that wrong copy: `npm run chaos`, 2026-12-02). Pushes the take-over copied are
 * not applied twice (push-deduper).
 */
const WAITS_FOR_TAKEOVER: ReadonlySet<Body['type']> = new Set(['pull', 'push', 'pullBatch', 'pushBatch', 'replicaPush', 'copyRows', 'copyPending']);

/** Which latency histogram a request kind's time in this server goes to (/metrics, `hybridps top`). */
const LATENCY_OF: Partial<Record<Body['type'], 'pull' | 'push'>> = { pull: 'pull', pullBatch: 'pull', push: 'push', pushBatch: 'push', replicaPush: 'push' };

export class PsServer {
  readonly nodeId: string;
  readonly stats = newServerStats();
  /** Time requests spend in this server, from arrival to reply (ms). */
  private readonly latency = { pull: new LatencyHistogram(), push: new LatencyHistogram() };
  private readonly log;
  private readonly dedup = new PushDeduper();
  private readonly tables: Tables;
  private readonly gate: ConsistencyGate;
  private readonly fence: Fence;
  // Made in start(), once the listener's address is known.
  private listener!: Listener;
  private member!: ClusterMember;
  private replication!: Replication;
  private handoff!: Handoff;
  private kv!: KvHandler;
  private checkpoints!: ServerCheckpoints;

  private constructor(private readonly opts: PsServerOptions) {
    this.nodeId = opts.nodeId ?? `server-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.log = createLogger(this.nodeId);
    this.tables = new Tables(this.log);
    this.gate = new ConsistencyGate(this.tables, this.stats);
    this.fence = new Fence(this.nodeId);
  }

  static async start(opts: PsServerOptions): Promise<PsServer> {
    const s = new PsServer(opts);
    for (const m of opts.optimizerModules ?? []) await loadOptimizerModule(m);
    s.listener = await Listener.listen({
      ...opts.limits, nodeId: s.nodeId, secret: opts.secret, tls: opts.tls, host: opts.host, port: opts.port,
      maxFrameBytes: opts.maxFrameBytes ?? opts.limits?.maxFrameBytes, epoch: () => s.view.epoch,
      onRequest: (env, conn) => s.onRequest(env, conn),
      onRejected: (why) => { s.stats.rejected++; s.log.warn('peer refused', { why }); },
    });
    // Synchronously after the listen: no peer can reach this server before its units exist.
    s.member = new ClusterMember({
      nodeId: s.nodeId, secret: opts.secret, tls: opts.tls, role: Role.Server, address: opts.advertise ? s.listener.url.replace(/\/\/.*$/, `//${opts.advertise}`) : s.listener.url, schedulerUrl: opts.schedulerUrl,
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      onHeartbeatError: (e) => s.log.warn('heartbeat failed', { error: e.message }),
      onView: (view, previous) => s.onView(view, previous),
    });
    const ctx: ServerContext = { member: s.member, tables: s.tables, gate: s.gate, dedup: s.dedup, stats: s.stats, log: s.log };
    s.replication = new Replication(ctx);
    s.handoff = new Handoff(ctx, (old, skip) => s.replication.rereplicate(old, skip));
    s.kv = new KvHandler(ctx, s.replication);
    s.checkpoints = new ServerCheckpoints(ctx, opts.checkpointRoot);
    await s.member.join();
    s.log.info('started', { url: s.listener.url, scheduler: opts.schedulerUrl });
    return s;
  }

  get url(): string { return this.listener.url; }

  get view(): ClusterView { return this.member.view; }

  /** Resolves when this server serves its keys (at once, unless it is taking rows over). */
  whenServing(): Promise<void> { return this.handoff.inProgress ?? Promise.resolve(); }

  private onView(view: ClusterView, previous: ClusterView): void {
    if (view.jobEnded && !previous.jobEnded) {
      this.log.info('the scheduler says the job has ended');
      this.opts.onJobEnd?.();
    }
    const membership = this.fence.onView(view);
    if (membership === 'declaredDead') {
      this.log.warn('fenced: this server was declared dead; it refuses data requests until it is registered again', { epoch: view.epoch });
      this.gate.clocks.rejectAll(new RpcError(ErrorCode.Fenced, `server ${this.nodeId} was declared dead in view ${view.epoch}; retry under the current view`));
    }
    if (membership === 'joined' && previous.epoch > 0) this.startOver(view);
    this.handoff.onView(view, previous, membership === 'joined');
    // A server taking its rows over holds part of them: it copies what it heads once it has them all (Handoff.finish).
    if (!this.handoff.inProgress) this.replication.rereplicate(previous);
    this.gate.setLiveWorkers(view.workers.map((w) => w.rank));
    this.log.info('view changed', { epoch: view.epoch, servers: view.servers.length, workers: view.workers.length });
    this.gate.applyReady();
  }

  /**
   * Registered again after being declared dead (fencing.ts): others held this server's ranges
   * meanwhile, so what it holds is stale. It drops every table, clock and applied-push record
   * and takes its rows over as a restarted server does (the handoff starts right after this).
   */
  private startOver(view: ClusterView): void {
    const rows = [...this.tables.values()].reduce((a, t) => a + t.store.rows, 0);
    this.log.warn('registered again after being declared dead: dropping the rows held and taking them over afresh', { epoch: view.epoch, rows });
    this.gate.clocks.reset(new RpcError(ErrorCode.Fenced, `server ${this.nodeId} was declared dead and registered again in view ${view.epoch}; retry under the current view`));
    this.tables.clear();
    this.dedup.clear();
  }

  private async onRequest(env: Envelope, conn: Connection): Promise<Body | void> {
    const t0 = performance.now();
    const incarnation = this.fence.incarnation;
    await this.viewAtLeast(env.epoch);
    try {
      authorize(env.body, { id: conn.peerId, role: conn.peerRole }, this.view, env.epoch);
      this.fence.admit(env.body.type, env.epoch, this.view);
      if (WAITS_FOR_TAKEOVER.has(env.body.type) && this.handoff.inProgress) {
        await this.handoff.inProgress;
        // Checked again under the view it resumes in: a take-over retried under a later view
        // (handoff.ts) may have taken these rows from another source since, and a copy from a
        // server declared dead meanwhile would overwrite them with what that server held.
        authorize(env.body, { id: conn.peerId, role: conn.peerRole }, this.view, env.epoch);
        this.fence.admit(env.body.type, env.epoch, this.view);
      }
      const reply = await this.dispatch(env.body, conn);
      this.fence.acknowledge(env.body.type, incarnation, this.view);
      return reply;
    } catch (e) {
      this.stats.rejected++;
      throw e;
    } finally {
      // Time in this server, waits included (an SSP/BSP gate, a take-over): what a worker waits for.
      const timed = LATENCY_OF[env.body.type];
      if (timed) this.latency[timed].observe(performance.now() - t0);
    }
  }

  private async dispatch(body: Body, conn: Connection): Promise<Body> {
    switch (body.type) {
      case 'declareTables': return { type: 'declareTablesReply', tables: this.tables.declare(body.tables) };
      case 'pull': return await this.kv.pull(body);
      case 'push': return await this.kv.push(body, conn.peerId, 0);
      case 'pullBatch': return await this.kv.pullBatch(body);
      case 'pushBatch': return await this.kv.pushBatch(body, conn.peerId);
      case 'replicaPush': return await this.kv.push(body.push, body.origin, 1);
      case 'clock': return { type: 'clockAck', clock: this.gate.clock(body.worker, body.clock) };
      case 'assignRows': assignRows(this.tables.get(body.table), body); return { type: 'ok' };
      case 'copyRows': return this.replication.copyIn(body);
      case 'readRows': return this.replication.readOut(body);
      case 'copyPending': return this.replication.copyPendingIn(body);
      case 'handoffMetaRequest': return this.handoff.meta(conn.peerId, body.retry);
      case 'handoffRequest': return this.handoff.page(body, conn.peerId);
      case 'checkpoint': return await this.checkpoints.write(body.dir, body.step);
      case 'restore': return await this.checkpoints.restore(body.dir);
      case 'statsRequest': return { type: 'statsReply', json: JSON.stringify(this.status()) };
      default: throw new RpcError(ErrorCode.Unsupported, `a server does not handle ${body.type}`);
    }
  }

  /** A request made under a newer view waits (briefly) until this server has that view too. */
  private async viewAtLeast(epoch: number): Promise<void> {
    const have = this.view.epoch;
    if (epoch <= have) return;
    if (epoch > have + 1000) throw new RpcError(ErrorCode.StaleEpoch, `request from view ${epoch}, far beyond this server's ${have}`);
    await this.member.waitForView((v) => v.epoch >= epoch, this.opts.viewWaitMs ?? 3_000).catch(() => {
      throw new RpcError(ErrorCode.StaleEpoch, `request from view ${epoch}, this server has ${this.view.epoch}`);
    });
  }

  /** What /metrics exports: totals, current values, and the pull and push latencies (util/metrics-http.ts). */
  metricsSource(): MetricsSource {
    return {
      counters: () => ({ ...this.stats }),
      gauges: () => {
        let rows = 0, memoryBytes = 0;
        for (const t of this.tables.values()) { rows += t.store.rows; memoryBytes += t.store.memoryBytes(); }
        return { waitingPulls: this.gate.clocks.waiting, rows, memoryBytes, epoch: this.view.epoch };
      },
      histograms: () => ({ pull: this.latency.pull.snapshot(), push: this.latency.push.snapshot() }),
      status: () => this.status(),
    };
  }

  status(): object {
    return {
      role: 'server', nodeId: this.nodeId, url: this.url, epoch: this.view.epoch,
      stats: this.stats, waitingPulls: this.gate.clocks.waiting, copiesInFlight: this.replication.copiesInFlight,
      // Bucket bounds (upper estimates) of the latency quantiles since start: `hybridps top` shows them.
      latencyMs: {
        pullP50: this.latency.pull.quantile(0.5), pullP99: this.latency.pull.quantile(0.99),
        pushP50: this.latency.push.quantile(0.5), pushP99: this.latency.push.quantile(0.99),
      },
      tables: [...this.tables.values()].map((t) => ({
        id: t.spec.id, name: t.spec.name, dim: t.spec.dim, rows: t.store.rows,
        bytesPerRow: t.store.bytesPerRow(), idealBytesPerRow: t.store.idealBytesPerRow(),
        pendingClocks: t.pending.size, appliedClock: t.appliedClock,
      })),
    };
  }

  async stop(): Promise<void> {
    this.gate.clocks.rejectAll(new RpcError(ErrorCode.Shutdown, 'server shutting down'));
    await this.member.leave();
    await this.listener.close();
    this.log.info('stopped');
  }
}
