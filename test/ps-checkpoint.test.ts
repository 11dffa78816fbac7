// Server checkpoints through the PS: rows and optimizer state written by 2 servers load onto
// 3 servers (each keeps the rows it owns) and training continues identically.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, table, randomFloats } from './helpers/cluster.ts';
import { Consistency } from '../src/wire/codec.ts';
import { readSafetensors } from '../src/checkpoint/safetensors.ts';

const spec = table({ id: 2, dim: 6, init: 'normal', initScale: 0.2, optimizer: 'adam', hyper: { lr: 0.05 }, consistency: Consistency.ASP });
const keys = BigUint64Array.from({ length: 400 }, (_, i) => BigInt(i * 7 + 3));

async function steps(c: Awaited<ReturnType<typeof startCluster>>, n: number, from: number): Promise<Float32Array> {
  const cl = c.clients[0] ?? (await c.client('trainer'));
  await cl.declareTables([spec]);
  for (let s = from; s < from + n; s++) await cl.push(2, keys, randomFloats(keys.length * 6, 100 + s));
  return cl.pull(2, keys);
}

test('save on 2 servers, restore on 3, continue: equals an uninterrupted run', async () => {
  const straight = await startCluster({ servers: 2 });
  const dir = mkdtempSync(join(straight.checkpointRoot, 'ckpt-'));
  await steps(straight, 3, 0);
  const files = await straight.clients[0]!.checkpoint(dir, 3);
  const want = await steps(straight, 2, 3);
  assert.is(files.length, 2);
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length, 2, 'one shard per server, no temp files left');
  const shard = await readSafetensors(files[0]!);
  assert.ok(shard.tensors['t2.keys'] && shard.tensors['t2.values'] && shard.tensors['t2.slot.m'] && shard.tensors['t2.slot.v'] && shard.tensors['t2.steps']);

  const resumed = await startCluster({ servers: 3 });
  const cl = await resumed.client('trainer');
  await cl.declareTables([spec]);
  const moved = join(resumed.checkpointRoot, 'ckpt');
  renameSync(dir, moved);
  const restored = await cl.restore(moved);
  assert.is(restored, keys.length, 'every row restored exactly once across the 3 servers');
  const got = await steps(resumed, 2, 3);
  await resumed.close();
  await straight.close();
  assert.equal(Array.from(got), Array.from(want));
});

test.run();
