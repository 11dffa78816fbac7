// A server's side of checkpoints: each server writes one shard file (safetensors) with every
// table it holds, rows + optimizer slots + update counts, atomically. Restore reads every shard
// of the directory (merging replicas: the copy with the most updates wins) and keeps the rows
// this server owns now, so a checkpoint written by S servers loads onto any other number.
// Tensor names: docs/checkpoints.md. Peers name checkpoint directories; a server only writes and
// reads inside its checkpoint root (`checkpointDir`).
import { mkdir } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { RpcError } from '../transport/index.ts';
import { ErrorCode, type Body } from '../wire/codec.ts';
import { saveTableStores, listShardFiles, loadCheckpointFiles, type ShardTable } from '../checkpoint/index.ts';
import { keyWords } from '../keys/keys.ts';
import { gatherKeys } from '../keys/index-arrays.ts';
import type { TableState } from './tables.ts';
import type { ServerContext } from './server-context.ts';

/**
 * `dir` resolved inside the checkpoint root (default: the HYBRIDPS_CHECKPOINT_ROOT variable, else
 * the working directory); a directory outside it is refused, so a peer cannot make a server
 * write or read files elsewhere.
 */
export function checkpointDir(dir: string, root = process.env.HYBRIDPS_CHECKPOINT_ROOT ?? process.cwd()): string {
  const base = resolve(root);
  const full = resolve(base, dir);
  if (full !== base && !full.startsWith(base + sep)) {
    throw new RpcError(ErrorCode.Unsupported, `checkpoint directory ${dir} is outside the server's checkpoint root ${base}`);
  }
  return full;
}

/** The Checkpoint and Restore requests of one server. */
export class ServerCheckpoints {
  constructor(private readonly ctx: ServerContext, private readonly root?: string) {}

  async write(dir: string, step: number): Promise<Body> {
    const full = checkpointDir(dir, this.root);
    const res = await saveServerCheckpoint(full, this.ctx.member.nodeId, [...this.ctx.tables.values()], { step, epoch: this.ctx.member.view.epoch }, this.holds());
    this.ctx.log.info('checkpoint written', { dir: full, files: res.files.length, rows: res.rows });
    return { type: 'checkpointReply', files: res.files, rows: res.rows };
  }

  /** Loads every shard file in `dir` and keeps the rows this server holds under the current view. */
  async restore(dir: string): Promise<Body> {
    const full = checkpointDir(dir, this.root);
    const rows = await restoreServerCheckpoint(full, this.ctx.tables.values(), this.holds());
    this.ctx.log.info('checkpoint restored', { dir: full, rows });
    return { type: 'checkpointReply', files: [], rows };
  }


  /** Whether this server is in the chain of a key under the current view (it holds the row). */
  private holds(): RowFilter {
    const view = this.ctx.member.view, me = this.ctx.member.nodeId;
    return (table, lo, hi) => view.servers.length === 0 || view.chainOf(table, lo, hi).some((m) => m.nodeId === me);
  }
}

type RowFilter = (table: number, lo: number, hi: number) => boolean;

/**
 * Writes this server's shard. With `holds`, only the rows of keys this server holds now: a former
 * holder keeps a stale copy of rows that moved, which a restore's "most updates wins" merge could
 * otherwise pick over the current ones (`npm run chaos`, 2026-12-02).
 */
export async function saveServerCheckpoint(dir: string, nodeId: string, tables: TableState[], meta: { step: number; epoch: number }, holds?: RowFilter): Promise<{ files: string[]; rows: number }> {
  await mkdir(dir, { recursive: true });
  const shard = `shard-${nodeId.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  const stores = tables.map((t): ShardTable => (holds ? heldRowsOf(t, (lo, hi) => holds(t.spec.id, lo, hi)) : t.store));
  const saved = await saveTableStores(dir, shard, stores, { step: meta.step, epoch: meta.epoch, extra: { server: nodeId } });
  return { files: saved.files, rows: saved.rows };
}

/** Table `t` as a shard of only the rows `keep` selects. */
function heldRowsOf(t: TableState, keep: (lo: number, hi: number) => boolean): ShardTable {
  const { store } = t;
  return {
    config: store.config, dim: store.dim, slotNames: store.slotNames, hyper: store.hyper,
    exportRows: () => {
      const rows = store.exportRows(), d = store.dim, w = keyWords(rows.keys);
      const idx: number[] = [];
      for (let i = 0; i < rows.keys.length; i++) if (keep(w[2 * i]!, w[2 * i + 1]!)) idx.push(i);
      const rowsOf = (a: Float32Array) => { const o = new Float32Array(idx.length * d); idx.forEach((r, i) => o.set(a.subarray(r * d, (r + 1) * d), i * d)); return o; };
      return { keys: gatherKeys(rows.keys, idx), values: rowsOf(rows.values), slots: rows.slots.map(rowsOf), steps: Uint32Array.from(idx, (r) => rows.steps[r]!) };
    },
  };
}

/** Loads the rows of every shard in `dir` that `owns` accepts; returns the number of rows kept. */
export async function restoreServerCheckpoint(dir: string, tables: Iterable<TableState>, owns: (table: number, lo: number, hi: number) => boolean): Promise<number> {
  const files = await listShardFiles(dir);
  if (files.length === 0) throw new Error(`no .safetensors shard files in ${dir}`);
  const loaded = await loadCheckpointFiles(files);
  let kept = 0;
  for (const t of tables) {
    const rows = loaded.tables.get(t.spec.name);
    if (!rows) continue;
    if (rows.dim !== t.spec.dim) throw new Error(`checkpoint table ${t.spec.name} has dim ${rows.dim}, the declared table has ${t.spec.dim}`);
    kept += t.store.importRows({ keys: rows.keys, values: rows.values, slots: rows.slots, steps: rows.steps, dim: rows.dim },
      (lo, hi) => owns(t.spec.id, lo, hi));
  }
  return kept;
}
