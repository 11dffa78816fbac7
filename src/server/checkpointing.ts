// A server's side of checkpoints: each server writes one safetensors file with every table it
// holds (rows, optimizer slots, update counts), atomically; restore reads every shard file of a
// checkpoint directory and keeps the rows this server owns now, so a checkpoint written by S
// servers loads onto any other number. Tensor names are documented in docs/checkpoints.md.
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors, readSafetensors, type Tensor } from '../checkpoint/safetensors.ts';
import type { TableState } from './ps-server.ts';

export const SHARD_PREFIX = 'shard-';

export async function saveServerCheckpoint(dir: string, nodeId: string, tables: TableState[], meta: { step: number; epoch: number }): Promise<{ files: string[]; rows: number }> {
  await mkdir(dir, { recursive: true });
  const tensors: Record<string, Tensor> = {};
  let rows = 0;
  for (const t of tables) {
    const r = t.store.exportRows();
    const n = r.keys.length, d = t.spec.dim;
    rows += n;
    tensors[`${t.spec.name}.keys`] = { dtype: 'U64', shape: [n], data: r.keys };
    tensors[`${t.spec.name}.values`] = { dtype: 'F32', shape: [n, d], data: r.values };
    t.store.slotNames.forEach((slot, i) => { tensors[`${t.spec.name}.slot.${slot}`] = { dtype: 'F32', shape: [n, d], data: r.slots[i]! }; });
    tensors[`${t.spec.name}.steps`] = { dtype: 'U32', shape: [n], data: r.steps };
  }
  const file = join(dir, `${SHARD_PREFIX}${nodeId.replace(/[^A-Za-z0-9_.-]/g, '_')}.safetensors`);
  await writeSafetensors(file, tensors, {
    format: 'hybridps-shard-v1', server: nodeId, step: String(meta.step), epoch: String(meta.epoch),
    tables: JSON.stringify(tables.map((t) => ({ id: t.spec.id, name: t.spec.name, dim: t.spec.dim, optimizer: t.spec.optimizer }))),
  });
  return { files: [file], rows };
}

/** Loads the rows of every `*.safetensors` in `dir` that `owns` accepts; returns the row count kept. */
export async function restoreServerCheckpoint(dir: string, tables: Map<number, TableState>, owns: (table: number, lo: number, hi: number) => boolean): Promise<number> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
  if (files.length === 0) throw new Error(`no .safetensors files in ${dir}`);
  const byName = new Map([...tables.values()].map((t) => [t.spec.name, t]));
  let kept = 0;
  for (const f of files) {
    const file = await readSafetensors(join(dir, f), { select: (name) => byName.has(name.split('.')[0]!) });
    for (const t of byName.values()) {
      const name = t.spec.name;
      const keys = file.tensors[`${name}.keys`];
      const values = file.tensors[`${name}.values`];
      if (!keys || !values) continue;
      if (keys.dtype !== 'U64' || values.dtype !== 'F32' || values.shape[1] !== t.spec.dim || values.shape[0] !== keys.shape[0]) {
        throw new Error(`${f}: table ${name} has keys ${keys.dtype}${JSON.stringify(keys.shape)} and values ${values.dtype}${JSON.stringify(values.shape)}; expected U64 [n] and F32 [n, ${t.spec.dim}]`);
      }
      const slots: Record<string, Float32Array> = {};
      for (const slot of t.store.slotNames) {
        const s = file.tensors[`${name}.slot.${slot}`];
        if (s) slots[slot] = s.data as Float32Array;
      }
      const steps = file.tensors[`${name}.steps`]?.data as Uint32Array | undefined;
      kept += t.store.importRows({ keys: keys.data as BigUint64Array, values: values.data as Float32Array, slots, steps, dim: t.spec.dim },
        (lo, hi) => owns(t.spec.id, lo, hi));
    }
  }
  return kept;
}
