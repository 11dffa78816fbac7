// A training run's hot rows (src/worker/hot-rows.ts, docs/training.md "Hot rows"): the budget per
// BSP table from --hot-rows (a row count, or a fraction of the table's rows), the choice counted
// over rank 0's first batches (hotChoiceBatches) and published to every worker through the dense
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
import { createHash } from 'node:crypto';

/**
 * Batches of rank 0 counted for the choice: 16 samples per hot row of the budget, at least 8
 * batches and at most 256k samples. Only ids seen at least twice are chosen, and with Zipf(1.1)
 * ids over 100k rows, 16k samples hold ~1040 such ids per table, 64k ~3660, 256k ~12.5k: at the
 * gpu preset (batch 2048) the 8 batches the choice first counted filled a budget of 16384 with
 * ~1030 rows, 39% of a step's unique rows (bench/RESULTS.md, 2026-12-02 session 6). The batches
 * are held in memory until trained on (~330 KB per batch of 2048).
 */
export function hotChoiceBatches(budget: number, batch: number): number {
  return Math.max(8, Math.min(Math.ceil((16 * budget) / batch), Math.floor(262_144 / batch)));
}

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
  const mine = o.rank === 0 ? await chooseHotKeys(o.first, T, budget) : null;
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

/** sha256 of every hot row's key, value, slots and update count: equal on every worker of a run (the result reports it). */
export function hotRowsDigest(hot: HotRows, tables: number): string {
  const h = createHash('sha256');
  const add = (a: ArrayBufferView) => h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  for (let i = 0; i < tables; i++) {
    const s = hot.state(i);
    if (!s) continue;
    add(s.keys); add(s.values); s.slots.forEach(add); add(s.steps);
  }
  return h.digest('hex');
}
