// How each table's consistency model gates its pulls and pushes (docs/architecture.md):
//   BSP     a push of clock c is summed per row (BspAccumulator) and applied once, when every
//           live worker has finished clock c; a pull at clock c waits for that moment;
//   SSP(s)  pushes apply on arrival; a pull at clock c waits until every live worker finished c - s;
//   ASP     pushes apply on arrival; pulls never wait.
// Worker clocks (ClockTable) follow the cluster view's live workers.
import { RpcError } from '../transport/index.ts';
import { Consistency, ErrorCode } from '../wire/codec.ts';
import { BspAccumulator } from './bsp-accumulator.ts';
import { ClockTable } from './clock-table.ts';
import type { TableState, Tables } from './tables.ts';
import type { ServerStats } from './server-stats.ts';

export class ConsistencyGate {
  readonly clocks = new ClockTable();
  /** A drained accumulator per table, reused for its next clock (its index and sums keep their capacity). */
  private readonly spare = new WeakMap<TableState, BspAccumulator>();

  constructor(private readonly tables: Tables, private readonly stats: ServerStats) {}

  setLiveWorkers(ranks: number[]): void {
    this.clocks.setLiveWorkers(ranks);
  }

  /** Waits until a pull at worker clock `clock` may read table `t` (-1: no clock, no wait). */
  async beforePull(t: TableState, clock: number): Promise<void> {
    if (clock < 0) return;
    const c = t.spec.consistency;
    if (c === Consistency.BSP) await this.clocks.waitFor(clock);
    else if (c === Consistency.SSP) await this.clocks.waitFor(clock - t.spec.staleness);
  }

  /** Refuses a push the table's model cannot take: under BSP one without a clock, or of a clock already applied. */
  admitPush(t: TableState, clock: number, freshRows: number): void {
    if (t.spec.consistency !== Consistency.BSP) return;
    if (clock < 0) throw new RpcError(ErrorCode.Malformed, 'a BSP push needs the clock it belongs to');
    if (clock <= t.appliedClock && freshRows > 0) {
      throw new RpcError(ErrorCode.StaleEpoch, `clock ${clock} of table ${t.spec.name} was already applied`);
    }
  }

  /** Pushes to `t` are applied on arrival (acknowledged as applied), unless it is BSP. */
  appliesOnArrival(t: TableState): boolean {
    return t.spec.consistency !== Consistency.BSP;
  }

  /** Takes the (validated: unique keys, finite values; not yet applied) rows of a push: BSP sums them for `clock`; SSP and ASP apply them now. */
  take(t: TableState, clock: number, keys: BigUint64Array, values: Float32Array): void {
    if (t.spec.consistency === Consistency.BSP) {
      this.sums(t, clock).addPush(keys, values);
      return;
    }
    this.apply(t, keys, values);
  }

  /**
   * Adds sums of `clock` taken over with rows from another server (a handoff: the table is new
   * here and takes no clock until the take-over is done); false, changing nothing, when this
   * server already applied that clock. Call applyReady after.
   */
  addPending(t: TableState, clock: number, keys: BigUint64Array, sums: Float64Array): boolean {
    if (!Number.isSafeInteger(clock) || clock <= t.appliedClock) return false;
    this.sums(t, clock).add(keys, sums);
    return true;
  }

  /**
   * Sums of `clock` that came with rows a chain's head just copied here (CopyPending after its
   * CopyRows): the head had not applied `clock` to those rows when it copied them. Summed for
   * the clock, or, when this server has applied it already (the workers' Clock reached it before
   * the head's), applied to the copied rows now: dropping them lost that clock's update of the
   * copy, which a later take-over from this server then served (test/ps-copy-pending.test.ts;
   * `fault-partition-server`, the take-over-source-cut scenario, 2026-12-02). Call applyReady after.
   */
  takeCopiedSums(t: TableState, clock: number, keys: BigUint64Array, sums: Float64Array): 'pending' | 'applied' {
    if (this.addPending(t, clock, keys, sums)) return 'pending';
    this.apply(t, keys, Float32Array.from(sums)); // the f32 rounding drain() gives a clock's sums
    return 'applied';
  }

  /** Worker `worker` finished `clock` steps: applies what that completes; returns its clock as this server sees it. */
  clock(worker: number, clock: number): number {
    this.clocks.advance(worker, clock);
    this.stats.clocks++;
    this.applyReady();
    // A joining worker starts at the slowest live worker's clock.
    return this.clocks.clockOf(worker);
  }

  /**
   * While this server takes its rows over (handoff.ts): clocks are recorded, nothing is applied.
   * A clock completing between two pages or two sources applied the sums taken so far to rows
   * not imported yet (which the import then overwrote), and moved appliedClock past the sums a
   * later source still had to hand over, which were then dropped. `resume` applies what is ready.
   */
  private held = false;

  hold(): void { this.held = true; }

  resume(): void {
    this.held = false;
    this.applyReady();
  }

  /** Applies every BSP clock all live workers have finished, oldest first, then lets waiting pulls through. */
  applyReady(): void {
    if (this.held) return;
    const min = this.clocks.minClock();
    for (const t of this.tables.values()) {
      if (t.spec.consistency !== Consistency.BSP) continue;
      const ready = [...t.pending.keys()].filter((c) => c < min).sort((a, b) => a - b);
      for (const c of ready) {
        const acc = t.pending.get(c)!;
        const { keys, grads } = acc.drain();
        t.pending.delete(c);
        this.apply(t, keys, grads); // views of acc: applied before it is reused
        t.appliedClock = c;
        this.spare.set(t, acc);
      }
    }
    this.clocks.release();
  }

  private apply(t: TableState, keys: BigUint64Array, grads: Float32Array): void {
    const t0 = performance.now();
    t.store.apply(keys, grads);
    this.stats.applyMs += performance.now() - t0;
  }

  /** The sums of `clock` in table `t` (created empty on first use). */
  private sums(t: TableState, clock: number): BspAccumulator {
    let acc = t.pending.get(clock);
    if (!acc) {
      acc = this.spare.get(t) ?? new BspAccumulator(t.spec.dim);
      this.spare.delete(t);
      t.pending.set(clock, acc);
    }
    return acc;
  }
}
