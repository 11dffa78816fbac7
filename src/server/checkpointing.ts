// A server's side of checkpoints: each server writes one shard file (safetensors) with every
// table it holds, rows + optimizer slots + update counts, atomically. Restore reads every shard
// of the directory (merging replicas: the copy with the most updates wins) and keeps the rows
// this server owns now, so a checkpoint written by S servers loads onto any other number.
// Tensor names: docs/checkpoints.md.
import { mkdir } from 'node:fs/promises';
import { saveTableStores, listShardFiles, loadCheckpointFiles } from '../checkpoint/index.ts';
import type { TableState } from './ps-server.ts';

export async function saveServerCheckpoint(dir: string, nodeId: string, tables: TableState[], meta: { step: number; epoch: number }): Promise<{ files: string[]; rows: number }> {
  await mkdir(dir, { recursive: true });
  const shard = `shard-${nodeId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  const saved = await saveTableStores(dir, shard, tables.map((t) => t.store), { step: meta.step, epoch: meta.epoch, extra: { server: nodeId } });
  return { files: saved.files, rows: saved.rows };
}

/** Loads the rows of every shard in `dir` that `owns` accepts; returns the number of rows kept. */
export async function restoreServerCheckpoint(dir: string, tables: Map<number, TableState>, owns: (table: number, lo: number, hi: number) => boolean): Promise<number> {
  const files = await listShardFiles(dir);
  if (files.length === 0) throw new Error(`no .safetensors shard files in ${dir}`);
  const loaded = await loadCheckpointFiles(files);
  let kept = 0;
  for (const t of tables.values()) {
    const rows = loaded.tables.get(t.spec.name);
    if (!rows) continue;
    if (rows.dim !== t.spec.dim) throw new Error(`checkpoint table ${t.spec.name} has dim ${rows.dim}, the declared table has ${t.spec.dim}`);
    kept += t.store.importRows({ keys: rows.keys, values: rows.values, slots: rows.slots, steps: rows.steps, dim: rows.dim },
      (lo, hi) => owns(t.spec.id, lo, hi));
  }
  return kept;
}
