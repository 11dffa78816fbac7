// The scheduler: accepts registrations, gives each member a stable rank within its role, watches
// heartbeats, and publishes a new cluster view (epoch + members + ring parameters) to everyone on
// every change. It also keeps the workers' clock table and runs named barriers over live workers.
import { Listener, type Connection, type LinkLimits, type TlsCredentials } from '../transport/index.ts';
import { ErrorCode, Role, type Body, type ClusterViewMsg, type Envelope, type MemberMsg } from '../wire/codec.ts';
import { RpcError } from '../transport/connection.ts';
import { createLogger } from '../util/log.ts';

export interface SchedulerOptions {
  secret: Uint8Array;
  /** TLS credentials for its links (mutual TLS); absent: plain links. */
  tls?: TlsCredentials;
  host?: string;
  port?: number;
  nodeId?: string;
  vnodes?: number;
  replicas?: number;
  heartbeatIntervalMs?: number;
  /** Missed heartbeats before a member is declared dead. */
  heartbeatMisses?: number;
  maxFrameBytes?: number;
  /** Bounds on what a peer's link may cost (docs/wire.md, "Bounds"); maxFrameBytes defaults to 1 MiB here. */
  limits?: LinkLimits;
  /** Barrier names remembered after release (their generation counters); older ones are forgotten. */
  maxBarrierNames?: number;
  /** Barriers one worker may wait in at once; a further one is refused. */
  maxBarriersPerWorker?: number;
  /**
   * The job's end, for orchestrators that wait for the scheduler (a TFJob's chief): once this many
   * workers have joined and none has been registered for `jobEndGraceMs`, `onJobEnd` is called.
   */
  jobWorkers?: number;
  jobEndGraceMs?: number;
  onJobEnd?: () => void;
}

/** Longest barrier name accepted, in UTF-16 code units (names are short labels like `step-12`). */
export const MAX_BARRIER_NAME = 256;

/** pausedAtSeen: the scheduler's pausedMs at lastSeen (see checkHeartbeats). */
interface MemberState { member: MemberMsg; conn: Connection; lastSeen: number; pausedAtSeen: number; clock: number }

interface BarrierState { generation: number; waiting: Map<number, () => void> }

const DEFAULT_MAX_BARRIER_NAMES = 4096;
const DEFAULT_MAX_BARRIERS_PER_WORKER = 64;
/** Dropped node ids remembered (see `dropped`). */
const MAX_DROPPED_NAMES = 4096;

export class Scheduler {
  private listener!: Listener;
  private members = new Map<string, MemberState>();
  private epoch = 0;
  /** Epoch of the last change to the worker set, and that set's signature (the ring's identity). */
  private workersEpoch = 0;
  private workersSignature = '';
  /** Barriers with waiters. Released barriers leave only their generation in `generations`. */
  private barriers = new Map<string, BarrierState>();
  /** Generations of released barriers, oldest first, bounded by maxBarrierNames. */
  private generations = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private lastCheck = Date.now();
  /** Worker ids that have joined (for the job's end), and the pending end while none is registered. */
  private workersSeen = new Set<string>();
  private jobEndTimer?: NodeJS.Timeout;
  private jobEnded = false;
  /** How long this process did not run, summed (checks that ran late): not held against members. */
  private pausedMs = 0;
  /** Node ids this scheduler declared dead or saw leave (a new registration of one is a new incarnation). */
  private dropped = new Set<string>();
  /** No member was heard for two intervals at the last check (see checkHeartbeats). */
  private isolated = false;
  private readonly log = createLogger('scheduler');
  readonly nodeId: string;
  readonly stats = { registrations: 0, deaths: 0, views: 0, heartbeats: 0, barriers: 0, malformed: 0 };

  private constructor(private readonly opts: SchedulerOptions) {
    this.nodeId = opts.nodeId ?? 'scheduler';
  }

  static async start(opts: SchedulerOptions): Promise<Scheduler> {
    const s = new Scheduler(opts);
    s.listener = await Listener.listen({
      ...opts.limits, nodeId: s.nodeId, secret: opts.secret, tls: opts.tls, host: opts.host, port: opts.port, maxFrameBytes: opts.maxFrameBytes ?? opts.limits?.maxFrameBytes ?? 1 << 20,
      epoch: () => s.epoch,
      onHello: (hello, conn, env) => s.register(hello, conn, env.epoch),
      onRequest: (env, conn) => s.onRequest(env, conn),
      onRejected: (why) => s.log.warn('peer refused', { why }),
    });
    s.timer = setInterval(() => s.checkHeartbeats(), s.heartbeatMs);
    s.timer.unref();
    s.log.info('listening', { url: s.listener.url });
    return s;
  }

  get url(): string { return this.listener.url; }

  /** How often members must beat (told to them in the welcome); heartbeatMisses of them missed is death. */
  get heartbeatMs(): number { return this.opts.heartbeatIntervalMs ?? 1000; }

  view(): ClusterViewMsg {
    return {
      epoch: this.epoch, vnodes: this.opts.vnodes ?? 64, replicas: this.opts.replicas ?? 1, workersEpoch: this.workersEpoch,
      members: [...this.members.values()].map((m) => m.member), ...(this.jobEnded ? { jobEnded: true } : {}),
    };
  }

  private register(hello: Extract<Body, { type: 'hello' }>, conn: Connection, senderEpoch: number): Body {
    // After a scheduler restart, members come back knowing a later epoch than ours: continue from
    // there, so the views we publish are newer than any they have seen.
    if (senderEpoch > this.epoch && senderEpoch < Number.MAX_SAFE_INTEGER / 2) this.epoch = senderEpoch;
    if (hello.role !== Role.Server && hello.role !== Role.Worker && hello.role !== Role.Client) {
      throw new RpcError(ErrorCode.Unsupported, `role ${hello.role} cannot register`);
    }
    const previous = this.members.get(hello.nodeId);
    if (previous && previous.conn !== conn) {
      const why = this.duplicateProblem(previous, hello);
      if (why) throw new RpcError(ErrorCode.Conflict, why);
      void previous.conn.close(4003, 'replaced by a new registration');
    }
    this.stats.registrations++;
    if (hello.role === Role.Client) {
      // Observers (tools, the launcher) get views but are not members.
      conn.closed.then(() => {});
      return { type: 'welcome', nodeId: this.nodeId, view: this.view(), heartbeatMs: this.heartbeatMs };
    }
    const rank = previous && previous.member.role === hello.role ? previous.member.rank : this.freeRank(hello.role, hello.nodeId);
    // A member that stays registered (a reconnect) keeps its `since`; one registering afresh (new,
    // or back after it was declared dead) gets the epoch of the view about to list it, which is how
    // a server learns that others took its key ranges meanwhile (docs/operations.md, "Fencing").
    // A member this scheduler never saw (it restarted) keeps the incarnation its hello names,
    // unless this scheduler itself declared it dead or saw it leave.
    const dropped = this.dropped.delete(hello.nodeId);
    const since = previous && previous.member.role === hello.role ? previous.member.since
      : !dropped && hello.since && hello.since <= this.epoch ? hello.since : this.epoch + 1;
    const member: MemberMsg = { nodeId: hello.nodeId, role: hello.role, address: hello.address, rank, since };
    this.members.set(hello.nodeId, { member, conn, lastSeen: Date.now(), pausedAtSeen: this.pausedMs, clock: previous?.clock ?? 0 });
    void conn.closed.then(() => this.drop(hello.nodeId, conn, 'connection closed'));
    this.log.info('joined', { node: hello.nodeId, role: Role[hello.role], rank, address: hello.address });
    if (hello.role === Role.Worker) { this.workersSeen.add(hello.nodeId); clearTimeout(this.jobEndTimer); this.jobEndTimer = undefined; }
    this.publish(conn);
    return { type: 'welcome', nodeId: this.nodeId, view: this.view(), heartbeatMs: this.heartbeatMs };
  }

  /**
   * Why a hello may not take over the node id of a registered member, or null when it may: a live
   * member keeps its id unless the newcomer is plausibly the same member restarting (same role and
   * the same address, or the old one has missed as many heartbeats as would declare it dead: two
   * were too few, a loaded member is often that late). Observers never take a member's id.
   */
  private duplicateProblem(previous: MemberState, hello: Extract<Body, { type: 'hello' }>): string | null {
    if (!previous.conn.isOpen) return null;
    const what = `node id '${hello.nodeId}' is already registered by a live ${Role[previous.member.role]} at ${previous.member.address || '(no address)'}`;
    if (hello.role === Role.Client || hello.role !== previous.member.role) return `${what}; give each process its own --node-id`;
    const stale = Date.now() - previous.lastSeen > this.heartbeatMs * (this.opts.heartbeatMisses ?? 5);
    if (hello.address === previous.member.address || stale) return null;
    return `${what}, and this ${Role[hello.role]} registers from ${hello.address || '(no address)'}; give each process its own --node-id (a restarted member re-registers from its old address, or once the old one has missed --heartbeat-misses heartbeats)`;
  }

  /**
   * The lowest free rank for a role; a node named `server-<i>` or `worker-<i>` (launch, TF_CONFIG)
   * gets rank i when free, so ranks survive a scheduler restart whatever order members return in.
   */
  private freeRank(role: Role, nodeId: string): number {
    const used = new Set([...this.members.values()].filter((m) => m.member.role === role).map((m) => m.member.rank));
    const named = /^(?:server|worker)-(\d{1,6})$/.exec(nodeId);
    if (named && !used.has(Number(named[1]))) return Number(named[1]);
    let r = 0;
    while (used.has(r)) r++;
    return r;
  }

  /** Bumps the epoch and sends the view to every connected peer (the new member gets it in its welcome). */
  private publish(except?: Connection): void {
    this.epoch++;
    this.stats.views++;
    const workers = [...this.members.values()].filter((m) => m.member.role === Role.Worker)
      .map((m) => `${m.member.rank}:${m.member.nodeId}@${m.member.address}`).sort().join(' ');
    if (workers !== this.workersSignature) { this.workersSignature = workers; this.workersEpoch = this.epoch; }
    const view = this.view();
    this.log.info('view changed', {
      epoch: view.epoch,
      servers: view.members.filter((m) => m.role === Role.Server).length,
      workers: view.members.filter((m) => m.role === Role.Worker).length,
    });
    for (const conn of this.listener.connections) {
      if (conn === except || !conn.isOpen) continue;
      conn.notify({ type: 'clusterView', view }).catch(() => {});
    }
    this.releaseBarriers();
  }

  private drop(nodeId: string, conn: Connection, why: string): void {
    const m = this.members.get(nodeId);
    if (!m || m.conn !== conn) return;
    this.members.delete(nodeId);
    this.dropped.add(nodeId);
    // Bounded: the oldest names go first (a forgotten one returning keeps the since it claims).
    if (this.dropped.size > MAX_DROPPED_NAMES) this.dropped.delete(this.dropped.values().next().value!);
    if (why === 'left') {
      this.log.info('left', { node: nodeId, role: Role[m.member.role] });
    } else {
      this.stats.deaths++;
      this.log.warn('peer lost', { node: nodeId, role: Role[m.member.role], why });
    }
    void conn.close(4004, why);
    this.publish();
    if (m.member.role === Role.Worker) this.checkJobEnd();
  }

  /** The job is over when every expected worker has joined and none is left (after a grace for restarts). */
  private checkJobEnd(): void {
    const n = this.opts.jobWorkers;
    if (!n || !this.opts.onJobEnd || this.jobEndTimer || this.workersSeen.size < n) return;
    if ([...this.members.values()].some((m) => m.member.role === Role.Worker)) return;
    const grace = this.opts.jobEndGraceMs ?? 10_000;
    this.log.info('every worker has gone', { workers: this.workersSeen.size, endingInMs: grace });
    this.jobEndTimer = setTimeout(() => {
      this.jobEnded = true;
      this.publish(); // servers see job_ended and exit
      setTimeout(() => this.opts.onJobEnd!(), 1_000); // the last view's frames leave before the listener closes
    }, grace);
  }

  private checkHeartbeats(): void {
    const limit = this.heartbeatMs * (this.opts.heartbeatMisses ?? 5);
    const now = Date.now();
    const sinceLast = now - this.lastCheck;
    this.lastCheck = now;
    // A check that runs late means this process did not run (GC, a busy machine): beats that
    // arrived meanwhile are still unread, so that time does not count as a member's silence.
    let credit = Math.max(0, sinceLast - this.heartbeatMs);
    const quiet = (m: MemberState) => now - m.lastSeen - (this.pausedMs + credit - m.pausedAtSeen);
    // No member heard for two intervals (two or more members, each beating every interval): far
    // likelier that this scheduler is cut off than that all of them died together. That time does
    // not count as their silence either; declaring them dead would fence every server when the
    // link heals (each would drop its rows, with no one left to take them from).
    const members = [...this.members.values()];
    const isolated = members.length >= 2 && members.every((m) => quiet(m) > 2 * this.heartbeatMs);
    if (isolated) credit = sinceLast;
    this.pausedMs += credit;
    if (isolated) {
      if (!this.isolated) this.log.warn('no member heard for two heartbeat intervals: this scheduler looks cut off; declaring no one dead until they are heard again', { members: members.length });
      this.isolated = true;
      return;
    }
    if (this.isolated) {
      // Heard again. After a long cut, TCP's retransmission backoff delays each link's first
      // packets by seconds, link by link: every member gets a full timeout more from now.
      this.log.info('members heard again; heartbeat checks resume');
      this.isolated = false;
      for (const m of members) { m.lastSeen = now; m.pausedAtSeen = this.pausedMs - limit; }
      return;
    }
    for (const [id, m] of this.members) {
      if (quiet(m) > limit) this.drop(id, m.conn, `no heartbeat for ${now - m.lastSeen} ms`);
    }
  }

  private liveWorkerRanks(): number[] {
    return [...this.members.values()].filter((m) => m.member.role === Role.Worker).map((m) => m.member.rank);
  }

  private releaseBarriers(): void {
    const live = this.liveWorkerRanks();
    for (const [name, b] of this.barriers) {
      if (b.waiting.size > 0 && live.every((r) => b.waiting.has(r))) {
        for (const release of b.waiting.values()) release();
        this.barriers.delete(name);
        this.rememberGeneration(name, b.generation + 1);
        this.stats.barriers++;
        this.log.debug('barrier released', { name, generation: b.generation + 1 });
      }
    }
  }

  /** Keeps a released barrier's next generation, forgetting the oldest names past the bound. */
  private rememberGeneration(name: string, generation: number): void {
    this.generations.delete(name);
    this.generations.set(name, generation);
    const max = this.opts.maxBarrierNames ?? DEFAULT_MAX_BARRIER_NAMES;
    while (this.generations.size > max) this.generations.delete(this.generations.keys().next().value!);
  }

  /** A worker's entry into barrier `name`: checked, bounded, then waiting until every live worker is in. */
  private async barrier(name: string, worker: number, conn: Connection): Promise<Body> {
    const m = [...this.members.values()].find((x) => x.conn === conn);
    if (!m || m.member.role !== Role.Worker) throw new RpcError(ErrorCode.Unsupported, 'only registered workers take part in barriers');
    if (m.member.rank !== worker) throw new RpcError(ErrorCode.Malformed, `barrier from worker rank ${m.member.rank} claims rank ${worker}`);
    if (name.length === 0 || name.length > MAX_BARRIER_NAME) throw new RpcError(ErrorCode.Malformed, `barrier name of ${name.length} characters: names are 1 to ${MAX_BARRIER_NAME} characters`);
    let b = this.barriers.get(name);
    if (!b) {
      const open = [...this.barriers.values()].filter((x) => x.waiting.has(worker)).length;
      const max = this.opts.maxBarriersPerWorker ?? DEFAULT_MAX_BARRIERS_PER_WORKER;
      if (open >= max) throw new RpcError(ErrorCode.Conflict, `worker ${worker} already waits in ${open} barriers (the limit); finish one before entering another`);
      b = { generation: this.generations.get(name) ?? 0, waiting: new Map() };
      this.barriers.set(name, b);
    }
    const generation = b.generation;
    await new Promise<void>((resolve) => {
      b.waiting.set(worker, resolve);
      this.releaseBarriers();
    });
    return { type: 'barrierRelease', name, generation };
  }

  private async onRequest(env: Envelope, conn: Connection): Promise<Body | void> {
    const body = env.body;
    switch (body.type) {
      case 'heartbeat': {
        const m = this.members.get(body.nodeId);
        if (m && m.conn === conn) {
          m.lastSeen = Date.now();
          m.pausedAtSeen = this.pausedMs;
          if (body.clock >= 0) m.clock = body.clock;
        }
        this.stats.heartbeats++;
        return env.requestId ? { type: 'ok' } : undefined;
      }
      case 'leave': {
        this.drop(body.nodeId, conn, 'left');
        return { type: 'ok' };
      }
      case 'barrier':
        return this.barrier(body.name, body.worker, conn);
      case 'statsRequest':
        return { type: 'statsReply', json: JSON.stringify(this.status()) };
      default:
        throw new RpcError(ErrorCode.Unsupported, `the scheduler does not handle ${body.type}`);
    }
  }

  status(): object {
    return {
      role: 'scheduler', epoch: this.epoch, url: this.url, stats: this.stats, openBarriers: this.barriers.size, barrierNames: this.generations.size,
      members: [...this.members.values()].map((m) => ({ ...m.member, role: Role[m.member.role], clock: m.clock, lastSeenMsAgo: Date.now() - m.lastSeen })),
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.jobEndTimer);
    await this.listener.close();
    this.log.info('stopped');
  }
}
