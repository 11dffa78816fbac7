// One training step of a worker: prep the batch (unique ids, inverse index, CSR per table), pull
// the unique rows from the parameter servers at the worker's clock, run upload + forward +
// backward on the GPU (ModelRunner: one submit, one wait), download only the touched rows'
// gradients and the dense gradients, push the row gradients, hand the dense gradient to a hook
// (allreduce in hybrid mode), apply the dense update (locally on the GPU: inside this step's
// encoder without a hook, inside the next one's with it; or through the servers as a range table
// in pure-PS mode), then advance the clock.
//
// Pipelined (`pipeline: true`): while the GPU computes step t, the caller's `ahead` callback
// prepares batch t+1 (`prepare`), which also pulls its rows early where the table's consistency
// allows (SSP with staleness >= 1, ASP, and BSP tables without hot rows). Every early pull
// carries the clock it will be used at, so the servers' gate keeps the model: under BSP they hold
// it until every update of the clocks before it is applied (step t's push among them); under
// SSP and ASP it may be answered at once, so before step t+1 uses such rows it re-pulls those
// that step t pushed, and a worker always sees its own updates. The sparse push and the dense
// part (allreduce + local update, or the dense push) of a step run concurrently, then the clock.
// Pulled rows are written into arrays lent to the step and taken back after its GPU work (row-arrays.ts).
//
// Row cache (`cache.rows > 0`): SSP and ASP tables with a built-in optimizer keep their rows in a
// RowCache (row-cache.ts: why it is exact); a stateful optimizer's (AdaGrad, Adam, FTRL) only on
// an f32 wire. Such a table's step serves what the cache holds for this clock, takes early rows
// for the rest (re-pulling those the last push touched), pulls what is left (with its optimizer
// state where the step's lookup says so), holds what it may, and applies its own push to the held
// rows while the push is on the wire (read only after it is acknowledged; a failed push clears
// the cache). Early pulls ask only for what the cache lacks.
//
// Hot rows (`hot`): a BSP table's most frequent rows held on every worker (hot-rows.ts): the
// step pulls and pushes only the others, and the hot rows' gradients ride in the dense allreduce.
//
// Gradient scale: the runner gives gradients of the local batch mean times B / globalBatch (applied
// on the GPU as the kernels write them: RunnerStepOptions.gradScale); they are pushed as
// (sum over local samples) / globalBatch, so under BSP the servers' sum over workers is exactly
// the gradient of the global batch mean and the update equals single-process minibatch SGD.
import type { PSClient } from '../client/ps-client.ts';
import type { ModelRunner, DenseOptimizer } from '../model/model-runner.ts';
import { prepareTable, type RowOrder, type TableBatch, type PreparedTable } from '../model/batch-prep.ts';
import { KeyIndex } from '../keys/key-index.ts';
import { keyWords } from '../keys/keys.ts';
import type { RowCache, RowCacheStats } from './row-cache.ts';
import { CachedTable, indexOf, type CachedEarly, type RowCacheConfig } from './cached-table.ts';
export { DEFAULT_ROW_CACHE, type RowCacheConfig, type CachedEarly } from './cached-table.ts';
export { psTableSpec, psTableSpecs, psDenseTableSpec } from './ps-table-specs.ts';
import { HotStep, type HotRows, type HotSplit } from './hot-rows.ts';
import { Lent, RowArrays } from './row-arrays.ts';

export interface WorkerBatch {
  B: number;
  /** The spec's per-step inputs (dense features, labels, ...). */
  inputs: Record<string, Float32Array>;
  /** Ids per table, in spec order. */
  tables: TableBatch[];
}

/** Dense-gradient hook: receives this worker's scaled dense gradient; returns the combined one. */
export type DenseHook = (grads: Float32Array) => Promise<Float32Array | void>;

export type DenseMode =
  /** Hybrid / single worker: the hook (e.g. ring-allreduce, summing) then a local GPU optimizer. */
  | { mode: 'local'; optimizer: DenseOptimizer; hook?: DenseHook }
  /** Pure PS: dense parameters are a range table on the servers, pulled and pushed each step. */
  | { mode: 'ps'; tableId: number };

export interface WorkerStepOptions {
  client: PSClient;
  runner: ModelRunner;
  /** PS table id of each spec table (spec order). */
  tableIds: number[];
  /** Sum of all workers' batch sizes in one clock. */
  globalBatch: number;
  dense: DenseMode;
  /** Overlap the sparse push with the dense part (and allow `prepare`'s early pulls). Default off. */
  pipeline?: boolean;
  /** Instrumentation: where every row a step used was read from (see RowTrace). */
  trace?: (t: StepTrace) => void;
  /** Worker-side row cache of SSP/ASP tables: rows held per table (0: off), ASP's refresh in clocks, stateful optimizers' policy. */
  cache?: RowCacheConfig;
  /** Hot rows of BSP tables, held on this worker (the same keys on every worker); needs the local dense mode. */
  hot?: HotRows;
}

/**
 * Per table of a step: for each unique key, the clock its pull carried and whether it saw this
 * worker's last push of it; for a cached table also the row's freshness (PullReply.fresh, or the
 * held row's) and whether the cache served it (its readClock is then -1: read at an earlier step).
 */
export interface RowTrace { table: number; keys: BigUint64Array; readClock: Int32Array; ownSeen: Uint8Array; fresh?: Int32Array; cached?: Uint8Array }
export interface StepTrace { clock: number; tables: RowTrace[] }

/** A batch prepared for the step at `clock`; `early` are rows pulled ahead (pipelined mode). */
export interface PreparedBatch {
  batch: WorkerBatch;
  clock: number;
  preps: PreparedTable[];
  prepMs: number;
  /** Early rows per table (null: pull at run time), and the push count when they were requested. */
  early: (Promise<Float32Array> | null)[];
  /** Cached tables: the positions pulled early (what the cache lacked) and their rows. */
  cachedEarly: (CachedEarly | null)[];
  pushSeq: number;
  /**
   * Per table with early rows: the positions left out of the early pull because the step running
   * when it was issued was about to push them (they are pulled after that push, with this
   * worker's update in them); null: none left out.
   */
  late: ({ idx: Int32Array; against: BigUint64Array } | null)[];
  /** Per table: where its hot keys are (null: no hot rows). */
  hot: (HotSplit | null)[];
  /** The row arrays its pulls write into, given back once the step's GPU work is done. */
  lent: Lent;
}


export interface StepPhases {
  prep: number;
  pull: number;
  upload: number;
  compute: number;
  download: number;
  push: number;
  dense: number;
}

export interface WorkerStepResult {
  loss: number;
  /** The clock this step ran at. */
  clock: number;
  ms: StepPhases;
}

const now = () => performance.now();

/** Positions in `keys` of the keys in `pushed`. */
function touched(keys: BigUint64Array, pushed: KeyIndex): number[] {
  const idx: number[] = [], w = keyWords(keys);
  for (let j = 0; j < keys.length; j++) if (pushed.lookup(w[2 * j]!, w[2 * j + 1]!) >= 0) idx.push(j);
  return idx;
}

export class WorkerStep {
  /** Pushes done so far, and the keys per table of the last one (for re-pulling early rows). */
  private pushSeq = 0;
  private lastPushed: BigUint64Array[] = [];
  /** The keys per table of the step now running, until its push is done (null: none running). */
  private inFlight: BigUint64Array[] | null = null;
  /** Per table: its cached side (row cache and pulls), or null (not cached). */
  private readonly cached: (CachedTable | null)[];
  private readonly hot: HotStep | null;
  /** The arrays pulled rows are written into, reused from step to step (row-arrays.ts). */
  private readonly rowArrays: RowArrays;

  constructor(readonly opts: WorkerStepOptions) {
    const n = opts.runner.spec.tables.length;
    this.rowArrays = new RowArrays(n);
    if (opts.tableIds.length !== n) throw new Error(`worker step: ${opts.tableIds.length} table ids for ${n} model tables`);
    if (!(opts.globalBatch > 0)) throw new Error(`worker step: globalBatch ${opts.globalBatch}`);
    const c = opts.cache;
    if (c && !(Number.isInteger(c.rows) && c.rows >= 0 && Number.isInteger(c.aspRefresh) && c.aspRefresh >= 1 && (c.stateRefresh === undefined || (Number.isInteger(c.stateRefresh) && c.stateRefresh >= 0)))) {
      throw new Error(`worker step: cache rows ${c.rows} must be an integer >= 0, ASP refresh ${c.aspRefresh} an integer >= 1 and state refresh ${c.stateRefresh} an integer >= 0`);
    }
    this.cached = opts.runner.spec.tables.map((t, i) => CachedTable.for(t, opts.tableIds[i]!, opts.client, opts.cache));
    const hot = opts.hot;
    if (hot && opts.dense.mode !== 'local') throw new Error('worker step: hot rows need the hybrid layout (their gradients ride in the dense allreduce); pure-PS mode has none, use --hot-rows 0');
    opts.runner.spec.tables.forEach((t, i) => {
      if (hot?.keys(i).length && t.consistency !== 'bsp') throw new Error(`worker step: table ${t.name} is ${t.consistency}; hot rows are for BSP tables only`);
    });
    this.hot = hot && hot.rows > 0 ? new HotStep(hot, opts.client) : null;
  }

  /** Per table: its row cache, or null (not cached). */
  get caches(): (RowCache | null)[] { return this.cached.map((c) => c?.cache ?? null); }

  /** The row caches' counters summed over tables (null when no table is cached). */
  cacheStats(): (RowCacheStats & { tables: number }) | null {
    const held = this.caches.filter((c): c is RowCache => c !== null);
    if (!held.length) return null;
    const sum = { hits: 0, misses: 0, evictions: 0, bytesSaved: 0, tables: held.length };
    for (const c of held) { sum.hits += c.stats.hits; sum.misses += c.stats.misses; sum.evictions += c.stats.evictions; sum.bytesSaved += c.stats.bytesSaved; }
    return sum;
  }

  /**
   * May table `i` be pulled now for a step at `clock`? BSP: for the next clock only, without hot
   * rows: the servers hold such a pull until that clock's updates (this worker's push of the
   * running step among them) are applied, then answer at once, so the rows are exactly what a
   * pull at run time reads, and the request's trip and the servers' decoding are off the step.
   */
  private mayPullEarly(i: number, clock: number): boolean {
    const t = this.opts.runner.spec.tables[i]!;
    const ahead = clock - this.opts.client.clockValue;
    if (ahead <= 0) return false; // pulled at run time anyway
    if (t.consistency === 'asp') return true;
    if (this.heldByServers(i)) return ahead === 1 && !this.hot?.hot.keys(i).length;
    return t.consistency === 'ssp' && (t.staleness ?? 0) >= ahead;
  }

  /** BSP: a pull at clock c is answered after every update of the clocks < c, so own pushes since need no re-pull. */
  private heldByServers(i: number): boolean {
    return this.opts.runner.spec.tables[i]!.consistency === 'bsp';
  }

  /**
   * Prepares `batch` for the step at `clock` (default: the next one to run): unique ids and CSR,
   * and with `pipeline`, early pulls of the tables whose consistency allows them (issued together).
   */
  prepare(batch: WorkerBatch, clock = this.opts.client.clockValue): PreparedBatch {
    const spec = this.opts.runner.spec;
    if (batch.tables.length !== spec.tables.length) throw new Error(`worker step: batch has ${batch.tables.length} tables, model ${spec.tables.length}`);
    const t0 = now();
    const preps = batch.tables.map((t, i) => prepareTable(t, batch.B, this.ownerOrder(i)));
    const hot = preps.map((p, i) => this.hot?.hot.split(i, p.keys) ?? null); // which keys are held here
    const prepMs = now() - t0;
    const pullEarly = preps.map((_, i) => !!this.opts.pipeline && this.mayPullEarly(i, clock));
    // The keys the running step is about to push would come back without this worker's update
    // and be pulled again after it (SSP:2 at the gpu preset: 4352 of 22293 rows a step, pulled
    // twice): leave them out of the early pull, and pull them once, after the push.
    const running = this.inFlight;
    const late = preps.map((p, i) => {
      if (!pullEarly[i] || this.cached[i] || !running || this.heldByServers(i)) return null;
      const idx = Int32Array.from(touched(p.keys, indexOf(running[i]!)));
      return idx.length ? { idx, against: running[i]! } : null;
    });
    const lent = new Lent(this.rowArrays);
    const early = preps.map((p, i) => (pullEarly[i] && !this.cached[i] ? this.pullExcept(i, p.keys, late[i]?.idx ?? null, clock, lent) : null));
    const cachedEarly = preps.map((p, i) => (pullEarly[i] ? this.cached[i]?.early(p.keys, clock, running?.[i]) ?? null : null));
    for (const e of early) e?.catch(() => {}); // awaited (or dropped) later
    for (const e of cachedEarly) e?.pulled?.catch(() => {});
    return { batch, clock, preps, prepMs, early, cachedEarly, pushSeq: this.pushSeq, late, hot, lent };
  }

  /**
   * Table i's unique rows grouped by owning server (batch prep lays them out so): each server's
   * part of the pull and push is then one contiguous run (subarrays and one copy, not a gather per
   * row), and the client reuses the grouping for both. BSP at the gpu preset, 1 worker, 2
   * servers: data path 50.1 -> 42.3 ms a step (bench/RESULTS.md, session 10).
   */
  private ownerOrder(i: number): RowOrder {
    return (keys) => this.opts.client.groupByOwner(this.opts.tableIds[i]!, keys);
  }

  /** Table i's rows of `keys` (keys.length x dim) but those at positions `except` (left as zeros, filled later). */
  private pullExcept(i: number, keys: BigUint64Array, except: Int32Array | null, clock: number, lent: Lent): Promise<Float32Array> {
    const { client, tableIds, runner } = this.opts, dim = runner.spec.tables[i]!.dim, n = keys.length * dim;
    if (!except?.length) return lent.fill(i, n, (into) => client.pull(tableIds[i]!, keys, { clock, into }));
    const skip = new Uint8Array(keys.length);
    for (const j of except) skip[j] = 1;
    const rest = new Int32Array(keys.length - except.length);
    for (let j = 0, k = 0; j < keys.length; j++) if (!skip[j]) rest[k++] = j;
    // Each pulled row straight to its place, its keys' owner grouping kept: an array and a scatter
    // per table fewer, and no hashing of the keys again (bench/RESULTS.md, session 15).
    const restKeys = client.keysAt(tableIds[i]!, keys, rest);
    return lent.fill(i, n, (into) => {
      const out = into.subarray(0, n);
      for (const j of except) out.fill(0, j * dim, (j + 1) * dim);
      return client.pull(tableIds[i]!, restKeys, { clock, into: out, at: rest }).then(() => out);
    });
  }

  /** Pulls table i's rows of `keys` at positions `idx` again, into the early rows `e` in place. */
  private repullInto(i: number, keys: BigUint64Array, idx: Int32Array, e: Float32Array, clock: number): Promise<Float32Array> {
    const { client, tableIds } = this.opts;
    return client.pull(tableIds[i]!, client.keysAt(tableIds[i]!, keys, idx), { clock, into: e, at: idx });
  }

  /** Drops a prepared batch's early rows, once their pulls settled: nothing read before a checkpoint is used after it. */
  async withoutEarlyRows(p: PreparedBatch): Promise<PreparedBatch> {
    await Promise.allSettled([...p.early, ...p.cachedEarly.map((e) => e?.pulled)]);
    return { ...p, early: p.early.map(() => null), cachedEarly: p.cachedEarly.map(() => null), late: p.late.map(() => null) };
  }

  /**
   * Rows of every table for the step at `clock`: early rows where valid, re-pulling those this
   * worker pushed since they were requested; every other pull (and the dense range) issued in one
   * turn so the client can batch them per server.
   */
  private async pullRows(p: PreparedBatch, clock: number): Promise<{ rows: Float32Array[]; dense: Float32Array | null; trace: RowTrace[] | null }> {
    const { client, runner, tableIds, dense } = this.opts;
    // Early rows are valid for this clock only, and only one push may have happened since (then re-pull what it touched).
    const usable = p.clock === clock && this.pushSeq - p.pushSeq <= 1;
    const early = await Promise.all(p.early.map((e) => (usable && e ? e : null)));
    const cachedEarly = p.cachedEarly.map((e) => (usable ? e : null));
    // Re-pull what the early pull left out and what this worker pushed since it was issued (the
    // same positions when the one push since was of the keys left out against: no second lookup).
    const covered = (i: number) => this.pushSeq === p.pushSeq + 1 && p.late[i]?.against === this.lastPushed[i];
    const pushed = early.map((e, i) => (e && this.pushSeq !== p.pushSeq && !covered(i) && !this.heldByServers(i) ? indexOf(this.lastPushed[i]!) : null));
    const repull = pushed.map((index, i) => {
      const left = early[i] ? p.late[i]?.idx ?? null : null, since = index ? touched(p.preps[i]!.keys, index) : [];
      if (!left) return since;
      if (!since.length) return Array.from(left);
      const mark = new Uint8Array(p.preps[i]!.keys.length);
      for (const j of left) mark[j] = 1;
      for (const j of since) mark[j] = 1;
      const both: number[] = [];
      for (let j = 0; j < mark.length; j++) if (mark[j]) both.push(j);
      return both;
    });
    const [full, , densePulled, cachedRows] = await Promise.all([
      Promise.all(p.preps.map((prep, i) => (early[i] || this.cached[i] ? null
        : p.hot[i] ? this.hot!.pull(tableIds[i]!, i, prep.keys, p.hot[i]!, clock)
          : p.lent.fill(i, prep.keys.length * runner.spec.tables[i]!.dim, (into) => client.pull(tableIds[i]!, prep.keys, { clock, into }))))),
      Promise.all(repull.map((idx, i) => (idx.length ? this.repullInto(i, p.preps[i]!.keys, Int32Array.from(idx), early[i]!, clock) : null))),
      dense.mode === 'ps' ? client.pullRange(dense.tableId, 0, runner.denseLength, { clock }) : Promise.resolve(null),
      Promise.all(p.preps.map((prep, i) => this.cached[i]?.rows(i, prep.keys, clock, cachedEarly[i] ?? null, this.pushSeq !== p.pushSeq ? this.lastPushed[i]! : null, !!this.opts.trace) ?? null)),
    ]);
    const rows = p.preps.map((_, i) => cachedRows[i]?.rows ?? early[i] ?? full[i]!); // early rows: patched in place
    if (!this.opts.trace) return { rows, dense: densePulled, trace: null };
    // The trace looks up the pushed keys itself (not the shortcut above): it checks the shortcut too.
    const pushedIndex = early.map((e, i) => (e && this.pushSeq !== p.pushSeq ? indexOf(this.lastPushed[i]!) : null));
    const trace = this.rowTrace(p, clock, early, pushedIndex, repull).map((t, i) => cachedRows[i]?.trace ?? t);
    return { rows, dense: densePulled, trace };
  }

  /** Instrumentation only (opts.trace): the clock each used row was read at, and whether it saw this worker's last push. */
  private rowTrace(p: PreparedBatch, clock: number, early: (Float32Array | null)[], pushed: (KeyIndex | null)[], repull: number[][]): RowTrace[] {
    return p.preps.map((prep, i) => {
      const n = prep.keys.length, w = keyWords(prep.keys);
      const readClock = new Int32Array(n).fill(early[i] ? p.clock : clock), ownSeen = new Uint8Array(n).fill(1);
      for (const j of repull[i]!) readClock[j] = clock;
      // Keys pushed since the early pull and not re-pulled would miss this worker's update (none by construction).
      const index = pushed[i];
      if (index) for (let j = 0; j < n; j++) if (index.lookup(w[2 * j]!, w[2 * j + 1]!) >= 0 && readClock[j] !== clock) ownSeen[j] = 0;
      return { table: i, keys: prep.keys, readClock, ownSeen };
    });
  }

  /**
   * Runs one step on `input` (a batch, or one `prepare`d for this clock). `ahead(clock)` is called
   * once the GPU work is submitted, to prepare the next batch while it computes.
   */
  async run(input: WorkerBatch | PreparedBatch, ahead?: (nextClock: number) => void): Promise<WorkerStepResult> {
    const { client, runner, tableIds, globalBatch, dense } = this.opts;
    const clock = client.clockValue;
    const p = 'preps' in input ? input : this.prepare(input, clock);
    const { batch, preps } = p;
    const t1 = now();

    this.inFlight = preps.map((prep) => prep.keys);
    const pulled = await this.pullRows(p, clock);
    if (pulled.dense) runner.setDense(pulled.dense);
    if (pulled.trace) this.opts.trace?.({ clock, tables: pulled.trace });
    const t2 = now();

    // Local batch mean -> (local sum) / global batch.
    const scale = batch.B / globalBatch;
    // Without a hook nothing combines the dense gradient: the update runs inside this step's
    // encoder (one submit per step). With one, it is staged and runs inside the next step's.
    const fused = dense.mode === 'local' && !dense.hook;
    // The GPU applies it as the gradients are written (RunnerStepOptions.gradScale): no JS pass
    // over every gradient after the readback. That pass cost 3.4 ms at best (9.6-14.8 ms median,
    // load 6.6 on 2 cores) for the 3.1M row-gradient floats at the gpu preset, batch 2048, plus
    // 0.5-1.1 ms for the dense gradient when not fused (bench/RESULTS.md, 2026-12-02).
    const gpu = runner.step(
      { B: batch.B, inputs: batch.inputs, tables: preps.map((prep, i) => ({ prep, rows: pulled.rows[i]! })) },
      { gradScale: scale, ...(fused ? { denseUpdate: dense.optimizer } : {}) },
    );
    ahead?.(clock + 1); // the next batch's prep (and early pulls) while the GPU computes
    const r = await gpu;
    p.lent.giveBack(); // the runner has copied the rows into its upload

    const t3 = now();
    const dg = r.denseGrads;
    let pushDone = t3;
    const hotGrads = this.hot?.hot.stage(p.hot, r.tableGrads); // read before the views go
    const sparse = Promise.all(preps.map((prep, i) => (p.hot[i] ? this.hot!.push(tableIds[i]!, i, p.hot[i]!, r.tableGrads[i]!, clock)
      : client.push(tableIds[i]!, prep.keys, r.tableGrads[i]!, { clock }))))
      .then(() => { pushDone = now(); })
      // A push that failed may or may not have been applied: nothing held may be served after it.
      .catch((e: unknown) => { for (const c of this.caches) c?.clear(); throw e; })
      .finally(() => r.release()); // pushed: the views may go
    // The held copies take the servers' update now, while the push is on the wire (the views are
    // released only after it): nothing reads them before the push is acknowledged, and a failed
    // push clears them. Off the critical path: 7 ms of CPU per step at the gpu preset (row-cache.ts).
    this.caches.forEach((c, i) => c?.applyPush(preps[i]!.keys, r.tableGrads[i]!));
    const densePart = async () => {
      if (dense.mode === 'ps') return client.pushRange(dense.tableId, 0, dg, { clock });
      if (fused) { if (hotGrads) await this.hot!.sumWithDense(dg, hotGrads); return; } // dense: updated inside this step's encoder
      const combined = hotGrads ? await this.hot!.sumWithDense(dg, hotGrads, dense.hook) : (dense.hook ? await dense.hook(dg) : undefined) ?? dg;
      await runner.applyDenseUpdate(combined, dense.optimizer);
    };
    // Serial: push, then the dense part (as before); pipelined: both at once (they are independent).
    if (this.opts.pipeline) await Promise.all([sparse, densePart()]);
    else { await sparse; await densePart(); }
    this.pushSeq++;
    this.lastPushed = preps.map((prep) => prep.keys);
    this.inFlight = null;
    const t4 = now();
    await client.clock();
    const t5 = now();
    return {
      loss: r.loss,
      clock,
      ms: {
        prep: p.prepMs, pull: t2 - t1, upload: r.ms.upload, compute: r.ms.compute, download: r.ms.download,
        // Pipelined, push and dense overlap: push is the sparse push's own time, dense the rest of the step.
        push: pushDone - t3, dense: t5 - t4 + (t4 - pushDone),
      },
    };
  }
}
