// The tables a server holds: each one's spec, its shard (TableStore) and, under BSP, the sums of
// clocks not yet applied (see consistency.ts). Declaring checks every spec before creating any
// table, so a bad declaration changes nothing; declaring the same spec again is harmless.
import { RpcError } from '../transport/index.ts';
import { Consistency, ErrorCode, type TableSpecMsg } from '../wire/codec.ts';
import type { Logger } from '../util/log.ts';
import { TableStore, checkTableConfig, type TableConfig } from './table-store.ts';
import type { BspAccumulator } from './bsp-accumulator.ts';

export interface TableState {
  spec: TableSpecMsg;
  store: TableStore;
  /** BSP: the summed gradients of clocks not yet applied, by clock. */
  pending: Map<number, BspAccumulator>;
  /** BSP: the last clock applied (-1: none yet). */
  appliedClock: number;
}

export class Tables {
  private readonly byId = new Map<number, TableState>();

  constructor(private readonly log: Logger) {}

  get size(): number { return this.byId.size; }

  values(): IterableIterator<TableState> { return this.byId.values(); }

  /** Forgets every table (a server fenced and starting over: fencing.ts). */
  clear(): void { this.byId.clear(); }

  /** The table, or an UnknownTable error naming the declared ones. */
  get(id: number): TableState {
    const t = this.byId.get(id);
    if (!t) throw new RpcError(ErrorCode.UnknownTable, `unknown table ${id} (declared: ${[...this.byId.keys()].join(', ') || 'none'})`);
    return t;
  }

  /** Declares the tables not declared yet; returns the spec of every table held. */
  declare(specs: TableSpecMsg[]): TableSpecMsg[] {
    const fresh: TableConfig[] = [];
    for (const s of specs) {
      const have = this.byId.get(s.id);
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
      this.byId.set(cfg.id, { spec, store: new TableStore(cfg), pending: new Map(), appliedClock: -1 });
      this.log.info('table declared', { id: cfg.id, name: cfg.name, dim: cfg.dim, optimizer: cfg.optimizer, consistency: Consistency[spec.consistency] });
    }
    return [...this.byId.values()].map((t) => t.spec);
  }
}

function sameSpec(a: TableSpecMsg, b: TableSpecMsg): boolean {
  return a.name === b.name && a.dim === b.dim && a.init === b.init && a.initScale === b.initScale && a.seed === b.seed &&
    a.optimizer === b.optimizer && a.consistency === b.consistency && a.staleness === b.staleness &&
    JSON.stringify(a.hyper) === JSON.stringify(b.hyper);
}
