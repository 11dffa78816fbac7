// A training run's hot rows (src/worker/hot-rows.ts, docs/training.md "Hot rows"): the budget per
// BSP table from --hot-rows (a row count, or a fraction of the table's rows), the choice counted
// over rank 0's first HOT_CHOICE_BATCHES batches and published to every worker through the dense
// allreduce, the rows (with their optimizer state) read from the servers. Off in pure-PS mode
// (no allreduce to carry their gradients) and for SSP/ASP tables (the row cache serves those).
import type { ModelSpec } from '../model/model-spec.ts';
import type { TableBatch } from '../model/batch-prep.ts';
import type { PSClient } from '../client/ps-client.ts';
import type { DenseAllreduce } from '../worker/dense-allreduce.ts';
import { HotRows } from '../worker/hot-rows.ts';
import { chooseHotKeys, encodeHotKeys, decodeHotKeys } from '../worker/hot-choice.ts';
import { getOptimizer, resolveHyper } from '../server/optimizers.ts';
import type { TrainConfig } from './config.ts';

/**
 * Batches of rank 0 counted for the choice: 8 at the gpu preset's batch 2048 are 16k samples,
 * enough to rank the Zipf head the budget holds (its rows are seen hundreds of times each).
 */
export const HOT_CHOICE_BATCHES = 8;

/** Hot rows per BSP table for this run (0: off): --hot-rows as a count, or below 1 as a fraction of the table's rows. */
export function hotBudget(cfg: TrainConfig): number {
  if (cfg.mode !== 'hybrid' || cfg.consistency.kind !== 'bsp' || !(cfg.hotRows > 0)) return 0;
  return cfg.hotRows < 1 ? Math.floor(cfg.hotRows * cfg.model.rowsPerTable) : Math.min(cfg.hotRows, cfg.model.rowsPerTable);
}

export interface HotSetup {
  /** Hot rows per BSP table (hotBudget). */
  budget: number;
  spec: ModelSpec; client: PSClient; tableIds: number[];
  rank: number; workers: number;
  /** The hybrid ring (publishes rank 0's choice when there is more than one worker). */
  ring: DenseAllreduce | null;
  /** Rank 0's first batches (each a list of the model's tables); ignored elsewhere. */
  first: TableBatch[][];
}

/** The run's hot rows, the same keys on every worker and read from the servers; null when off. Every worker calls it at the same point. */
export async function setupHotRows(o: HotSetup): Promise<HotRows | null> {
  const { budget } = o, T = o.spec.tables.length;
  if (budget === 0) return null;
  const mine = o.rank === 0 ? chooseHotKeys(o.first, T, budget) : null;
  let keys = mine;
  if (o.workers > 1) {
    if (!o.ring) throw new Error('hot rows: more than one worker and no ring to publish the choice on');
    keys = decodeHotKeys(await o.ring.sum(encodeHotKeys(mine, T, budget)), T, budget);
  }
  const hot = new HotRows(o.spec.tables.map((t, i) => {
    if (t.consistency !== 'bsp') return null;
    const optimizer = getOptimizer(t.optimizer);
    return { keys: keys![i]!, dim: t.dim, optimizer, hyper: resolveHyper(optimizer, t.hyper) };
  }));
  await hot.readFrom(o.client, o.tableIds);
  return hot;
}
