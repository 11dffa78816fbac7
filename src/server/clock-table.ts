// Worker clocks as one server sees them, and the pulls waiting on them.
// A worker's clock is the number of steps it has finished (it sends Clock(c+1) after the pushes of
// step c). Rules, checked against the slowest *live* worker (membership from the cluster view):
//   BSP      a pull at clock c waits until every live worker finished c steps (and the summed
//            pushes of every clock < c have been applied, which happens at the same moment);
//   SSP(s)   a pull at clock c waits until every live worker finished c - s steps;
//   ASP      never waits.

export interface Waiter { minClock: number; resolve: () => void; reject: (e: Error) => void }

export class ClockTable {
  private clocks = new Map<number, number>();
  private live: number[] = [];
  private waiters: Waiter[] = [];

  /** Live worker ranks from the cluster view. A newly seen worker starts at the slowest clock. */
  setLiveWorkers(ranks: number[]): void {
    const floor = this.minClock();
    for (const r of ranks) if (!this.clocks.has(r)) this.clocks.set(r, Number.isFinite(floor) ? floor : 0);
    this.live = [...ranks];
  }

  get liveWorkers(): readonly number[] { return this.live; }

  /** Records worker `rank` reaching `clock`; clocks never go backwards. */
  advance(rank: number, clock: number): void {
    this.clocks.set(rank, Math.max(this.clocks.get(rank) ?? 0, clock));
  }

  clockOf(rank: number): number { return this.clocks.get(rank) ?? 0; }

  /** Every known worker's clock, for a server taking over keys. */
  snapshot(): [rank: number, clock: number][] { return [...this.clocks]; }

  /** The slowest live worker's clock (Infinity with no live workers). */
  minClock(): number {
    let m = Infinity;
    for (const r of this.live) m = Math.min(m, this.clocks.get(r) ?? 0);
    return m;
  }

  /** Resolves once every live worker has clock >= minClock. */
  waitFor(minClock: number): Promise<void> {
    if (this.minClock() >= minClock) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ minClock, resolve, reject }));
  }

  get waiting(): number { return this.waiters.length; }

  /** Lets through every waiter whose condition now holds. Call after any change. */
  release(): void {
    const m = this.minClock();
    const still: Waiter[] = [];
    for (const w of this.waiters) (m >= w.minClock ? w.resolve() : still.push(w));
    this.waiters = still;
  }

  /** Forgets every clock, failing the waiting pulls with `err` (a server starting over). */
  reset(err: Error): void {
    this.rejectAll(err);
    this.clocks.clear();
    this.live = [];
  }

  rejectAll(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
