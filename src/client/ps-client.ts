// The worker's handle on the parameter servers (ps-lite's KVWorker): pull and push rows by key,
// pull and push dense vectors by range, and advance the worker clock. Each request is split by
// owning server under the current cluster view and the parts go out in parallel; a part that
// fails because a link dropped or the view moved is re-routed and re-sent with the same
// sequence number, so the server applies it once.
import type { Peer } from '../transport/index.ts';
import { Role, type Envelope, type RowFormat, type TableSpecMsg } from '../wire/codec.ts';
import { resolveRowFormat, rowValueBytes } from '../wire/row-format.ts';
import type { Reply, RequestBody } from '../wire/replies.ts';
import type { ClusterView } from '../cluster/cluster-view.ts';
import { ClusterMember } from '../cluster/member.ts';
import { createLogger } from '../util/log.ts';
import { compose, gatherKeys, iota } from '../keys/index-arrays.ts';
import { isRetryable } from './retry-policy.ts';
import { RequestCoalescer, writeRows } from './request-coalescer.ts';
import { checkAt, gatherRows, isIdentity, mergeBySeq, OwnerGroups, rangeKeys, runStart } from './row-parts.ts';
import { keysFromNumbers, keyWords } from '../keys/keys.ts';
import { scatterRows } from '../util/row-words.ts';

export type { PSClientOptions, WireBytes, PulledState, PullOptions, RowsWithState } from './client-types.ts';
import type { PSClientOptions, WireBytes, PulledState, PullOptions, RowsWithState } from './client-types.ts';

export class PSClient {
  readonly nodeId: string;
  rank = -1;
  clockValue = 0;
  readonly bytes: WireBytes = { pull: 0, push: 0, other: 0 };
  readonly tables = new Map<number, TableSpecMsg>();
  /** Scheduler link, cluster view, heartbeat and the links to servers (src/cluster/member.ts). */
  private readonly member: ClusterMember;
  private seq = 0;
  private readonly log;
  private readonly coalescer: RequestCoalescer | null;
  private readonly ownerGroups = new OwnerGroups();
  /** How row values travel (PSClientOptions.format). */
  readonly format: RowFormat;

  private constructor(private readonly opts: PSClientOptions) {
    this.format = resolveRowFormat(opts.format, opts.f16, 'PSClient option');
    this.nodeId = opts.nodeId ?? `worker-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.log = createLogger(this.nodeId);
    this.member = new ClusterMember({
      nodeId: this.nodeId, secret: opts.secret, tls: opts.tls, role: opts.role ?? Role.Worker, address: opts.address ?? '',
      schedulerUrl: opts.schedulerUrl, heartbeatIntervalMs: opts.heartbeatIntervalMs, heartbeatClock: () => this.clockValue,
      requestTimeoutMs: opts.requestTimeoutMs, maxFrameBytes: opts.maxFrameBytes,
      onView: (view) => {
        const me = view.workers.find((w) => w.nodeId === this.nodeId);
        if (me) this.rank = me.rank;
      },
    });
    this.coalescer = opts.coalesce === false ? null : new RequestCoalescer((id, body) => this.toServer(id, body), () => this.rank, this.format);
  }

  static async connect(opts: PSClientOptions): Promise<PSClient> {
    const c = new PSClient(opts);
    await c.member.join();
    return c;
  }

  get view(): ClusterView { return this.member.view; }

  onViewChange(listener: (v: ClusterView) => void): void { this.member.onViewChange(listener); }

  /** Resolves once the view satisfies `pred` (e.g. all expected servers and workers joined). */
  waitForView(pred: (v: ClusterView) => boolean, timeoutMs = 60_000): Promise<ClusterView> {
    return this.member.waitForView(pred, timeoutMs);
  }

  private server(id: string): Peer { return this.member.server(id); }

  private async toServer<B extends RequestBody>(serverId: string, body: B): Promise<Envelope<Reply<B['type']>>> {
    return this.server(serverId).request(body, this.opts.requestTimeoutMs);
  }

  private async withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const attempts = this.opts.retries ?? 5;
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (e) {
        if (i + 1 >= attempts || !isRetryable(e)) throw e;
        this.log.warn('retrying', { what, attempt: i + 1, error: (e as Error).message });
        const epoch = this.view.epoch;
        // Give the scheduler a moment to publish a view without the failed server.
        await this.waitForView((v) => v.epoch > epoch, 200 * 2 ** i).catch(() => {});
      }
    }
  }

  /** Declares tables on every server (idempotent; a different spec for an existing id is an error). */
  async declareTables(specs: TableSpecMsg[]): Promise<void> {
    await Promise.all(this.view.servers.map((s) =>
      this.toServer(s.nodeId, { type: 'declareTables', tables: specs, workers: this.view.workers.length })));
    for (const s of specs) this.tables.set(s.id, s);
  }

  private dimOf(table: number): number {
    const t = this.tables.get(table);
    if (!t) throw new Error(`table ${table} was not declared through this client`);
    return t.dim;
  }

  /** Rows of `keys` (unique keys expected), keys.length x dim: with `into`, a view of it (unless one server answered every key in order: its reply's view). */
  async pull(table: number, keys: BigUint64Array, opts: PullOptions = {}): Promise<Float32Array> {
    return (await this.pullFresh(table, keys, opts)).rows;
  }

  /**
   * `pull`, and how fresh the rows are: the least of the answering servers' PullReply.fresh (every
   * update of the clocks < fresh is in them; -1: unknown, e.g. an older server or no keys).
   */
  async pullFresh(table: number, keys: BigUint64Array, opts: PullOptions = {}): Promise<{ rows: Float32Array; fresh: number }> {
    return this.pullRows(table, keys, opts.clock ?? -1, false, opts.into, opts.at);
  }

  /**
   * `pullFresh`, and the rows' optimizer state as the servers hold it (a worker-side row cache of
   * a stateful optimizer's table updates its copies with it): slot k of key j at
   * slots[k][j * dim ..], its update count at steps[j]. Needs coalescing and an f32 wire.
   */
  async pullWithState(table: number, keys: BigUint64Array, opts: { clock?: number } = {}): Promise<{ rows: Float32Array; fresh: number; state: PulledState }> {
    if (!this.coalescer || this.format !== 'f32') throw new Error(`pullWithState: optimizer state is pulled only in a PullBatch (coalescing on) on an f32 wire (this client's rows travel as ${this.format})`);
    return this.pullRows(table, keys, opts.clock ?? -1, true) as Promise<{ rows: Float32Array; fresh: number; state: PulledState }>;
  }

  private async pullRows(table: number, keys: BigUint64Array, clock: number, withState: boolean, into?: Float32Array, at?: Int32Array): Promise<{ rows: Float32Array; fresh: number; state?: PulledState }> {
    const dim = this.dimOf(table), n = keys.length;
    if (at) checkAt(at, n, into, dim);
    else if (into && into.length < n * dim) throw new RangeError(`pull: into has ${into.length} floats for ${n} rows of dim ${dim}`);
    let out: Float32Array | null = null, fresh = n ? Infinity : -1;
    let state: PulledState | undefined;
    await this.forEachPart(table, keys, async (serverId, idx, partKeys) => {
      const r = this.coalescer ? await this.coalescer.pull(serverId, table, partKeys, dim, clock, withState) : (await this.toServer(serverId, {
        type: 'pull', table, keys: partKeys, clock, worker: this.rank, format: this.format,
      })).body;
      const v = r.values, m = idx.length;
      if (v.length !== m * dim) {
        throw new Error(`server ${serverId} answered ${v.length} values for ${m} rows of dim ${dim}`);
      }
      fresh = Math.min(fresh, r.fresh ?? -1);
      const st = 'state' in r ? r.state : undefined;
      // The values at the width they travelled (an older server may answer f32 whatever was asked).
      this.bytes.pull += partKeys.byteLength + v.length * rowValueBytes(r.format ?? 'f32') + (st?.byteLength ?? 0);
      if (withState) {
        // Per part: slot 0 (m x dim), slot 1, ..., then m update counts.
        const slotCount = st ? (st.length / m - 1) / dim : -1;
        if (!st || !Number.isInteger(slotCount) || slotCount < 0 || (state && state.slots.length !== slotCount)) {
          throw new Error(`server ${serverId} answered ${st?.length ?? 0} state values for ${m} rows of dim ${dim}: not k slot rows and a count per row`);
        }
        state ??= { slots: Array.from({ length: slotCount }, () => new Float32Array(n * dim)), steps: new Float32Array(n) };
        for (let k = 0; k < slotCount; k++) scatterRows(state.slots[k]!, idx, st.subarray(k * m * dim, (k + 1) * m * dim), dim);
        for (let i = 0; i < m; i++) state.steps[idx[i]!] = st[slotCount * m * dim + i]!;
      }
      if (at) { scatterRows(out = into!, compose(at, idx), v, dim); return; } // straight to their places
      // One server answered for every key, in order: hand out the reply itself (a view of the frame).
      if (isIdentity(idx, n)) { out = v; return; }
      scatterRows((out ??= into?.subarray(0, n * dim) ?? new Float32Array(n * dim)), idx, v, dim); // one copy when idx is a run (groupByOwner)
    });
    return { rows: out ?? new Float32Array(0), fresh, ...(withState ? { state: state ?? { slots: [], steps: new Float32Array(0) } } : {}) }; // out: set unless no keys
  }

  /** Pulls of several tables at once: with coalescing (the default) one message per server. */
  pullMany(parts: { table: number; keys: BigUint64Array; clock?: number }[]): Promise<Float32Array[]> {
    return Promise.all(parts.map((p) => this.pull(p.table, p.keys, { clock: p.clock })));
  }

  /** Pushes to several tables at once: with coalescing (the default) one message per server. */
  async pushMany(parts: { table: number; keys: BigUint64Array; grads: Float32Array; clock?: number }[]): Promise<void> {
    await Promise.all(parts.map((p) => this.push(p.table, p.keys, p.grads, { clock: p.clock })));
  }

  /** Pushes one gradient row per key; resolves when every owning server acknowledged. */
  async push(table: number, keys: BigUint64Array, grads: Float32Array, opts: { clock?: number } = {}): Promise<void> {
    const dim = this.dimOf(table);
    if (grads.length !== keys.length * dim) throw new Error(`push of ${keys.length} keys needs ${keys.length * dim} values, got ${grads.length}`);
    await this.forEachPart(table, keys, async (serverId, idx, partKeys, seq, run) => {
      const m = idx.length, clock = opts.clock ?? this.clockValue; // a run: its gradients are a subarray
      const rows = run >= 0 ? { src: grads.subarray(run * dim, (run + m) * dim), idx: null, dim } : { src: grads, idx, dim };
      if (this.coalescer) await this.coalescer.push(serverId, table, partKeys, rows, seq, clock); // gathered into the frame
      else {
        let values = rows.src;
        if (rows.idx) writeRows(rows, (values = new Float32Array(m * dim)), 0);
        await this.toServer(serverId, { type: 'push', table, keys: partKeys, values, worker: this.rank, clock, seq, format: this.format });
      }
      this.bytes.push += partKeys.byteLength + partKeys.length * dim * rowValueBytes(this.format);
    });
  }

  /**
   * Routes keys to their owners and runs `send` per owner in parallel. A part that fails on a
   * dropped link or a moved view is re-routed under the next view and re-sent with its original
   * sequence number (one counter per client), so a server that already applied it does not again.
   */
  private async forEachPart(
    table: number, keys: BigUint64Array,
    send: (serverId: string, idx: Int32Array, partKeys: BigUint64Array, seq: number, run: number) => Promise<void>,
  ): Promise<void> {
    if (keys.length === 0) return;
    let groups: { idx: Int32Array; seq?: number }[] = [{ idx: iota(keys.length) }];
    for (let attempt = 0; ; attempt++) {
      const view = this.view;
      if (view.servers.length === 0) throw new Error('no servers in the cluster view');
      const tasks: { serverId: string; idx: Int32Array; seq: number }[] = [];
      for (const g of groups) {
        const subset = isIdentity(g.idx, keys.length) ? keys : gatherKeys(keys, g.idx);
        this.ownerGroups.partition(view.ring, table, subset).forEach((part, s) => {
          if (part.length) tasks.push({ serverId: view.servers[s]!.nodeId, idx: subset === keys ? part : compose(g.idx, part), seq: g.seq ?? ++this.seq });
        });
      }
      const failed: { idx: Int32Array; seq: number }[] = [];
      let lastErr: unknown;
      await Promise.all(tasks.map(async (t) => {
        const run = runStart(t.idx), partKeys = run >= 0 ? keys.subarray(run, run + t.idx.length) : gatherKeys(keys, t.idx);
        try {
          await send(t.serverId, t.idx, partKeys, t.seq, run); // run: where idx is one run of keys, its start (else -1)
        } catch (e) {
          if (!isRetryable(e) || attempt >= (this.opts.retries ?? 5)) throw e;
          lastErr = e;
          failed.push({ idx: t.idx, seq: t.seq });
        }
      }));
      if (failed.length === 0) return;
      groups = mergeBySeq(failed);
      this.log.warn('re-routing request parts', { table, parts: failed.length, error: (lastErr as Error).message });
      const epoch = view.epoch;
      await this.waitForView((v) => v.epoch > epoch, 500 * 2 ** attempt).catch(() => {});
    }
  }

  /** The keys at ascending positions `at` of `keys`, their owner grouping kept where `keys` has one (OwnerGroups.subset). */
  keysAt(table: number, keys: BigUint64Array, at: Int32Array): BigUint64Array {
    return this.ownerGroups.subset(this.view.ring, table, keys, at);
  }

  /** `keys` grouped by owner (keys[order[j]] at j; null: already grouped), their parts kept for the pull and push (row-parts.ts OwnerGroups). */
  groupByOwner(table: number, keys: BigUint64Array): { order: Int32Array | null; keys: BigUint64Array } {
    return this.ownerGroups.group(this.view.ring, table, keys);
  }

  /** Reads `length` floats of a dense range table starting at `offset`. */
  async pullRange(table: number, offset: number, length: number, opts: { clock?: number } = {}): Promise<Float32Array> {
    const block = this.dimOf(table);
    const { keys, first } = rangeKeys(offset, length, block);
    const rows = await this.pull(table, keys, opts);
    const start = offset - first * block;
    return rows.slice(start, start + length);
  }

  /** Pushes a gradient for `values.length` floats of a dense range table starting at `offset`. */
  async pushRange(table: number, offset: number, values: Float32Array, opts: { clock?: number } = {}): Promise<void> {
    const block = this.dimOf(table);
    const { keys, first } = rangeKeys(offset, values.length, block);
    const grads = new Float32Array(keys.length * block);
    grads.set(values, offset - first * block);
    await this.push(table, keys, grads, opts);
  }

  /**
   * Sets rows of a range table to `values` (offset/length in floats), on every replica, with fresh
   * optimizer state: how a dense vector kept on the servers (pure-PS mode) gets its initial values.
   */
  async assignRange(table: number, offset: number, values: Float32Array): Promise<void> {
    const block = this.tables.get(table)?.dim;
    if (!block) throw new Error(`assignRange: table ${table} is not declared by this client`);
    if (offset % block !== 0) throw new Error(`assignRange: offset ${offset} is not a multiple of the row width ${block}`);
    const { keys } = rangeKeys(offset, values.length, block);
    const padded = new Float32Array(keys.length * block);
    padded.set(values);
    await this.withRetry('assign', () => Promise.all([...this.byChainMember(table, keys)].map(([serverId, idx]) =>
      this.toServer(serverId, { type: 'assignRows', table, keys: gatherKeys(keys, idx), values: gatherRows(padded, idx, block) }))));
  }

  /** Positions of `keys` per server of their chains (every replica of each key). */
  private byChainMember(table: number, keys: BigUint64Array): Map<string, number[]> {
    const byServer = new Map<string, number[]>(), words = keyWords(keys);
    for (let i = 0; i < keys.length; i++) {
      for (const m of this.view.chainOf(table, words[2 * i]!, words[2 * i + 1]!)) {
        let list = byServer.get(m.nodeId);
        if (!list) byServer.set(m.nodeId, (list = []));
        list.push(i);
      }
    }
    return byServer;
  }

  /**
   * Rows with their optimizer state (slots in the optimizer's order, update counts), read from
   * each key's chain head; not gated by the table's consistency: for rows no worker pushes (hot
   * rows, held by the workers themselves).
   */
  async readRows(table: number, keys: BigUint64Array): Promise<RowsWithState> {
    const dim = this.dimOf(table), n = keys.length;
    const out: RowsWithState = { keys, values: new Float32Array(n * dim), slots: [], steps: new Uint32Array(n) };
    await this.forEachPart(table, keys, async (serverId, idx, partKeys) => {
      const r = (await this.toServer(serverId, { type: 'readRows', table, keys: partKeys })).body;
      const m = idx.length, sc = r.slotCount;
      if (r.keys.length !== m || r.values.length !== m * dim || r.slots.length !== sc * m * dim || r.steps.length !== m) {
        throw new Error(`server ${serverId} answered readRows of ${m} rows of dim ${dim} with ${r.keys.length} keys, ${r.values.length} values, ${r.slots.length} slot values (${sc} slots), ${r.steps.length} counts`);
      }
      while (out.slots.length < sc) out.slots.push(new Float32Array(n * dim));
      scatterRows(out.values, idx, r.values, dim);
      for (let s = 0; s < sc; s++) scatterRows(out.slots[s]!, idx, r.slots.subarray(s * m * dim, (s + 1) * m * dim), dim);
      for (let i = 0; i < m; i++) out.steps[idx[i]!] = r.steps[i]!;
      this.bytes.other += r.values.byteLength + r.slots.byteLength;
    });
    return out;
  }

  /**
   * Writes rows with their optimizer state to every server of each key's chain, replacing what
   * they held (AssignRows with state; the rank-0 worker only): hot rows going back before a checkpoint.
   */
  async writeRows(table: number, rows: RowsWithState): Promise<void> {
    const dim = this.dimOf(table), sc = rows.slots.length;
    await this.withRetry('writeRows', () => Promise.all([...this.byChainMember(table, rows.keys)].map(([serverId, idx]) => {
      const m = idx.length, slots = new Float32Array(sc * m * dim);
      rows.slots.forEach((s, k) => slots.set(gatherRows(s, idx, dim), k * m * dim));
      return this.toServer(serverId, {
        type: 'assignRows', table, keys: gatherKeys(rows.keys, idx), values: gatherRows(rows.values, idx, dim),
        state: { slots, slotCount: sc, steps: Uint32Array.from(idx, (k) => rows.steps[k]!) },
      });
    })));
  }

  /** Finishes the current step: tells every server (and the scheduler) this worker's new clock. */
  async clock(): Promise<number> {
    this.clockValue++;
    const c = this.clockValue;
    await this.withRetry('clock', () => Promise.all(this.view.servers.map((s) =>
      this.toServer(s.nodeId, { type: 'clock', worker: this.rank, clock: c }))));
    this.member.beat().catch(() => {});
    return c;
  }

  /**
   * For a worker joining a running job: adopts the clock the servers gave it when it entered the
   * view (the slowest live worker's), so its first pushes belong to a clock not yet applied.
   */
  async joinClock(): Promise<number> {
    const replies = await this.withRetry('joinClock', () => Promise.all(this.view.servers.map((s) =>
      this.toServer(s.nodeId, { type: 'clock', worker: this.rank, clock: this.clockValue }))));
    const c = Math.max(this.clockValue, ...replies.map((r) => r.body.clock));
    this.clockValue = Number.isFinite(c) ? c : this.clockValue;
    return this.clockValue;
  }

  /** Waits until every live worker reached the named barrier. */
  async barrier(name: string): Promise<void> {
    await this.member.requestScheduler({ type: 'barrier', name, worker: this.rank, generation: 0 }, 600_000);
  }

  async checkpoint(dir: string, step: number): Promise<string[]> {
    const replies = await Promise.all(this.view.servers.map((s) =>
      this.toServer(s.nodeId, { type: 'checkpoint', dir, step })));
    return replies.flatMap((r) => r.body.files);
  }

  async restore(dir: string): Promise<number> {
    const replies = await Promise.all(this.view.servers.map((s) =>
      this.toServer(s.nodeId, { type: 'restore', dir })));
    return replies.reduce((a, r) => a + r.body.rows, 0);
  }

  async serverStats(): Promise<object[]> {
    const replies = await Promise.all(this.view.servers.map((s) =>
      this.toServer(s.nodeId, { type: 'statsRequest' })));
    return replies.map((r) => JSON.parse(r.body.json));
  }

  async close(): Promise<void> {
    await this.member.leave();
  }
}
