// One node's membership in the cluster, the same for servers and workers: registers with the
// scheduler, keeps the latest cluster view (and follows every newer one it publishes), beats at
// the scheduler's pace from its welcome, and keeps one link per server node id, closing the links
// of servers that left the view. A scheduler that restarts is found again by the next heartbeat
// (the link reconnects on demand and registers anew).
import { Peer, RpcError, linkKind, type TlsCredentials } from '../transport/index.ts';
import { ErrorCode, type BodyOf, type ClusterViewMsg, type Envelope, type Role } from '../wire/codec.ts';
import type { ReplyType, RequestBody } from '../wire/replies.ts';
import { ClusterView } from './cluster-view.ts';

export interface MemberOptions {
  nodeId: string;
  secret: Uint8Array;
  /** TLS credentials for its links (mutual TLS); absent: plain links. */
  tls?: TlsCredentials;
  role: Role;
  /** Where this node listens (servers, workers on the allreduce ring), announced to the scheduler. */
  address: string;
  schedulerUrl: string;
  /** Heartbeat interval; default: the scheduler's, from its welcome (else 1000 ms). */
  heartbeatIntervalMs?: number;
  /** The clock a heartbeat reports (-1 when this node has none). */
  heartbeatClock?: () => number;
  onHeartbeatError?: (e: Error) => void;
  /** Called with each newer view (after the links to departed servers are closed). */
  onView?: (view: ClusterView, previous: ClusterView) => void;
  /** For the links to servers. */
  requestTimeoutMs?: number;
  maxFrameBytes?: number;
}

/** A link was asked for to a server the current view does not list (the view moved): retry under the next one. */
export class NotInViewError extends RpcError {
  override name = 'NotInViewError';
  constructor(readonly serverId: string, readonly epoch: number) {
    super(ErrorCode.StaleEpoch, `server ${serverId} is not in view ${epoch}`);
  }
}

export class ClusterMember {
  view = ClusterView.empty();
  private schedulerPeer: Peer;
  private servers = new Map<string, Peer>();
  private listeners: ((v: ClusterView) => void)[] = [];
  private waiters: (() => void)[] = [];
  private heartbeat?: NodeJS.Timeout;
  private schedulerBeatMs = 0;
  /** This node's incarnation as the last view listing it had it (told to a restarted scheduler). */
  private since: number | undefined;

  constructor(private readonly opts: MemberOptions) {
    this.schedulerPeer = new Peer(opts.schedulerUrl, {
      nodeId: opts.nodeId, secret: opts.secret, tls: opts.tls, role: opts.role, address: opts.address,
      epoch: () => this.view.epoch, connectAttempts: 20, since: () => this.since,
      onRequest: (env) => { if (env.body.type === 'clusterView') this.setView(env.body.view); },
      onConnect: (_conn, welcome) => { this.schedulerBeatMs = welcome.heartbeatMs ?? 0; if (welcome.view) this.setView(welcome.view); },
    });
  }

  get nodeId(): string { return this.opts.nodeId; }

  /** Registers (the welcome brings the first view) and starts beating. */
  async join(): Promise<void> {
    await this.schedulerPeer.connection();
    const interval = this.opts.heartbeatIntervalMs ?? (this.schedulerBeatMs || 1000); // the scheduler's pace unless set here
    this.heartbeat = setInterval(() => {
      this.beat().catch((e: Error) => this.opts.onHeartbeatError?.(e));
    }, interval);
    this.heartbeat.unref();
  }

  /** One heartbeat now (with the current clock). */
  beat(): Promise<void> {
    return this.schedulerPeer.notify({ type: 'heartbeat', nodeId: this.opts.nodeId, clock: this.opts.heartbeatClock?.() ?? -1 });
  }

  /** A request to the scheduler (barriers); the reply's type follows the request's. */
  requestScheduler<B extends RequestBody>(body: B, timeoutMs?: number): Promise<Envelope<BodyOf<ReplyType<B['type']>>>> {
    return this.schedulerPeer.request(body, timeoutMs);
  }

  /** The link to server `nodeId` of the current view (made on first use, closed when it leaves the view). */
  server(nodeId: string): Peer {
    let p = this.servers.get(nodeId);
    if (!p) {
      const m = this.view.servers.find((s) => s.nodeId === nodeId);
      if (!m) throw new NotInViewError(nodeId, this.view.epoch);
      p = new Peer(m.address, {
        nodeId: this.opts.nodeId, secret: this.opts.secret, tls: this.opts.tls, role: this.opts.role,
        epoch: () => this.view.epoch, requestTimeoutMs: this.opts.requestTimeoutMs, connectAttempts: 4,
        maxFrameBytes: this.opts.maxFrameBytes,
        // Pulls and pushes: the framed link costs less CPU a frame than ws (bench/RESULTS.md, session 9).
        link: linkKind('frames'),
      });
      this.servers.set(nodeId, p);
    }
    return p;
  }

  onViewChange(listener: (v: ClusterView) => void): void { this.listeners.push(listener); }

  /** Resolves once the view satisfies `pred` (e.g. all expected servers and workers joined). */
  async waitForView(pred: (v: ClusterView) => boolean, timeoutMs = 60_000): Promise<ClusterView> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.view)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for the cluster (view ${this.view.epoch}: ${this.view.servers.length} servers, ${this.view.workers.length} workers)`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.view;
  }

  private setView(msg: ClusterViewMsg): void {
    if (msg.epoch <= this.view.epoch) return;
    const previous = this.view;
    this.view = new ClusterView(msg);
    const me = msg.members.find((m) => m.nodeId === this.opts.nodeId);
    if (me?.since) this.since = me.since;
    for (const [id, peer] of this.servers) {
      if (!this.view.servers.some((s) => s.nodeId === id)) { void peer.close(); this.servers.delete(id); }
    }
    this.opts.onView?.(this.view, previous);
    for (const w of this.waiters.splice(0)) w();
    for (const l of this.listeners) l(this.view);
  }

  /** Stops beating, tells the scheduler this node leaves, and closes every link. */
  async leave(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.schedulerPeer.notify({ type: 'leave', nodeId: this.opts.nodeId }).catch(() => {});
    await Promise.all([...this.servers.values()].map((p) => p.close()));
    await this.schedulerPeer.close();
  }
}
