// Table shards in safetensors: tensor names and types, save/load round trip with optimizer state,
// loading 2 servers' files onto 3 servers (each keeps what it owns), replicas resolved to the most
// updated copy, a numpy-style file without optimizer state, bad files, and manifest.json.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TableStore, type TableConfig } from '../src/server/table-store.ts';
import { hash64 } from '../src/keys/key-index.ts';
import {
  saveTableStores, loadTableStores, loadCheckpointFiles, listShardFiles, readSafetensorsHeader,
  writeManifest, readManifest, checkpointFiles,
} from '../src/checkpoint/index.ts';
import { rng, testSeed } from './helpers/reference.ts';

const seed = testSeed();
const root = mkdtempSync(join(tmpdir(), 'hybridps-ckpt-'));
let n = 0;
const freshDir = () => { const d = join(root, `c${n++}`); mkdirSync(d); return d; };

const emb: TableConfig = { id: 1, name: 'emb', dim: 4, init: 'normal', initScale: 0.1, seed: 5n, optimizer: 'adam', hyper: { lr: 0.01 } };
const bias: TableConfig = { id: 2, name: 'bias', dim: 1, init: 'zeros', initScale: 0, seed: 6n, optimizer: 'adagrad', hyper: { initial_accumulator: 0.1 } };

/** A store with rows for `keys`, about half of them updated in each of 3 rounds. */
function trained(cfg: TableConfig, keys: BigUint64Array, r: () => number): TableStore {
  const s = new TableStore(cfg);
  s.pull(keys);
  for (let round = 0; round < 3; round++) {
    const some = keys.filter(() => r() < 0.5);
    s.apply(some, Float32Array.from({ length: some.length * cfg.dim }, () => r() - 0.5));
  }
  return s;
}

const owner = (lo: number, hi: number, servers: number) => hash64(lo, hi) % servers;
function sameRows(a: TableStore, b: TableStore, what: string): void {
  const x = a.exportRows(), y = b.exportRows();
  assert.equal(y.keys, x.keys, `${what}: keys`);
  assert.equal(y.values, x.values, `${what}: values`);
  assert.equal(y.slots, x.slots, `${what}: slots`);
  assert.equal(y.steps, x.steps, `${what}: steps`);
}

test(`tensor names, dtypes, shapes and metadata of a shard file (TEST_SEED=${seed})`, async () => {
  const r = rng(seed);
  const dir = freshDir();
  const keys = BigUint64Array.from({ length: 50 }, (_, i) => BigInt(i * 7 + 1));
  const stores = [trained(emb, keys, r), trained(bias, keys.subarray(0, 10), r)];
  const saved = await saveTableStores(dir, 'server-0', stores, { step: 42, epoch: 3, dense: { 'mlp.w0': { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) } } });
  assert.equal(saved.files, [join(dir, 'server-0.safetensors')]);
  assert.is(saved.rows, 60);
  assert.equal(saved.tables, { emb: 50, bias: 10 });
  const h = await readSafetensorsHeader(saved.files[0]!);
  assert.is(saved.bytes, h.fileSize);
  const shape = (name: string) => [h.tensors[name]?.dtype, ...(h.tensors[name]?.shape ?? [])];
  assert.equal(shape('emb.keys'), ['U64', 50]);
  assert.equal(shape('emb.values'), ['F32', 50, 4]);
  assert.equal(shape('emb.slot.m'), ['F32', 50, 4]);
  assert.equal(shape('emb.slot.v'), ['F32', 50, 4]);
  assert.equal(shape('emb.steps'), ['U32', 50]);
  assert.equal(shape('bias.slot.accumulator'), ['F32', 10, 1]);
  assert.equal(shape('dense.mlp.w0'), ['F32', 2, 3]);
  assert.is(Object.keys(h.tensors).length, 5 + 4 + 1);
  assert.is(h.metadata.format, 'hybridps-shard');
  assert.is(h.metadata.step, '42');
  assert.is(h.metadata.epoch, '3');
  const tables = JSON.parse(h.metadata.tables!);
  assert.equal(tables[0], { name: 'emb', id: 1, dim: 4, init: 'normal', initScale: 0.1, seed: '5', optimizer: 'adam',
    hyper: { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, slots: ['m', 'v'], rows: 50 });
  // Round trip into fresh stores.
  const loaded = await loadCheckpointFiles(saved.files);
  assert.equal(loaded.dense.get('mlp.w0'), { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) });
  for (const s of stores) {
    const t = loaded.tables.get(s.name)!;
    assert.is(t.dim, s.dim);
    assert.is(t.meta?.optimizer, s.config.optimizer);
    const fresh = new TableStore(s.config);
    fresh.importRows(t);
    sameRows(s, fresh, s.name);
  }
  assert.equal(await listShardFiles(dir), saved.files);
});

test('2 servers\' shards load onto 3 servers: every row exactly once, state intact', async () => {
  const r = rng(seed + 1);
  const dir = freshDir();
  const keys = BigUint64Array.from({ length: 4000 }, () => BigInt(Math.floor(r() * 2 ** 48)));
  const whole = trained(emb, keys, r);
  const all = whole.exportRows();
  // Split the trained table over 2 servers by ownership, save each server's shard.
  for (let s = 0; s < 2; s++) {
    const part = new TableStore(emb);
    part.importRows(all, (lo, hi) => owner(lo, hi, 2) === s);
    await saveTableStores(dir, `server-${s}`, [part], { step: 7 });
  }
  const files = await listShardFiles(dir);
  assert.is(files.length, 2);
  const rows = (await loadTableStores(files)).get('emb')!;
  assert.is(rows.keys.length, 4000);
  assert.is(rows.duplicates, 0);
  const three = [0, 1, 2].map((s) => {
    const st = new TableStore(emb);
    st.importRows(rows, (lo, hi) => owner(lo, hi, 3) === s);
    return st;
  });
  assert.is(three.reduce((a, s) => a + s.rows, 0), 4000, 'each row on exactly one server');
  const merged = new TableStore(emb);
  for (const s of three) merged.importRows(s.exportRows());
  sameRows(whole, merged, 'resharded');
});

test('replicas in several files: the copy with the most updates wins', async () => {
  const dir = freshDir();
  const cfg: TableConfig = { ...emb, init: 'zeros', optimizer: 'sgd', hyper: { lr: -1 } };
  const a = new TableStore(cfg), b = new TableStore(cfg);
  const k = BigUint64Array.of(1n, 2n, 3n);
  a.apply(k, new Float32Array(12).fill(1));                // steps 1, 1, 1
  b.apply(k, new Float32Array(12).fill(1));
  b.apply(k.subarray(1, 2), new Float32Array(4).fill(1)); // key 2 has step 2 on b
  a.apply(k.subarray(2, 3), new Float32Array(4).fill(1));
  a.apply(k.subarray(2, 3), new Float32Array(4).fill(1)); // key 3 has step 3 on a
  await saveTableStores(dir, 'a', [a], { step: 1 });
  await saveTableStores(dir, 'b', [b], { step: 1 });
  const t = (await loadTableStores(await listShardFiles(dir))).get('emb')!;
  assert.is(t.duplicates, 3);
  const s = new TableStore(cfg);
  s.importRows(t);
  const e = s.exportRows();
  assert.equal(Array.from(e.keys), [1n, 2n, 3n]);
  assert.equal(Array.from(e.steps), [1, 2, 3]);
  assert.equal(Array.from(e.values.filter((_, i) => i % 4 === 0)), [1, 2, 3]);
});

/** Bytes of a safetensors file as numpy's writer lays them out. */
function numpyFile(tensors: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }>): Uint8Array {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [k, t] of Object.entries(tensors)) { header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] }; off += t.bytes.length; }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = Buffer.alloc(8 + json.length + off);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8, 'utf8');
  let at = 8 + json.length;
  for (const t of Object.values(tensors)) { out.set(t.bytes, at); at += t.bytes.length; }
  return out;
}
const raw = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test('a numpy-written checkpoint (int64 keys, float64 values, no slots or steps) loads', async () => {
  const dir = freshDir();
  // np.save_file({"emb.keys": np.array([10, 20, 30]), "emb.values": np.random.randn(3, 4)}): numpy's default dtypes.
  writeFileSync(join(dir, 'from-numpy.safetensors'), numpyFile({
    'emb.keys': { dtype: 'I64', shape: [3], bytes: raw(BigInt64Array.of(10n, 20n, 30n)) },
    'emb.values': { dtype: 'F64', shape: [3, 4], bytes: raw(Float64Array.from({ length: 12 }, (_, i) => i / 4)) },
  }));
  const t = (await loadTableStores(await listShardFiles(dir))).get('emb')!;
  assert.equal(t.slots, {});
  assert.is(t.steps, undefined);
  const s = new TableStore({ ...emb, optimizer: 'adagrad', hyper: { initial_accumulator: 0.5 } });
  assert.is(s.importRows(t), 3);
  const e = s.exportRows();
  assert.equal(Array.from(e.keys), [10n, 20n, 30n]);
  assert.equal(Array.from(e.values), Array.from({ length: 12 }, (_, i) => i / 4));
  assert.ok(e.slots[0]!.every((v) => v === 0.5), 'missing optimizer state starts at its initial value');
  assert.ok(e.steps.every((v) => v === 0));
});

test('bad shard files are refused naming the file, table and tensor', async () => {
  const dir = freshDir();
  const f32 = (n: number) => ({ dtype: 'F32', shape: [n, 2], bytes: raw(new Float32Array(n * 2)) });
  const u64 = (...k: bigint[]) => ({ dtype: 'U64', shape: [k.length], bytes: raw(BigUint64Array.from(k)) });
  const cases: [string, Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }>, RegExp][] = [
    ['orphan', { 'emb.values': f32(1) }, /table 'emb' has emb\.values but no emb\.keys/],
    ['unknown', { 'emb.keys': u64(1n), 'emb.values': f32(1), weights: f32(1) }, /tensor 'weights' is not a hybridps checkpoint tensor/],
    ['count', { 'emb.keys': u64(1n, 2n), 'emb.values': f32(3) }, /tensor 'emb\.values' must have shape \[2, dim\] to match the keys, has \[3, 2\]/],
    ['slotwidth', { 'emb.keys': u64(1n), 'emb.values': f32(1), 'emb.slot.m': { dtype: 'F32', shape: [1, 3], bytes: raw(new Float32Array(3)) } }, /'emb\.slot\.m' has width 3, emb\.values has 2/],
    ['bigkey', { 'emb.keys': u64(1n << 48n), 'emb.values': f32(1) }, /tensor 'emb\.keys': key 281474976710656 at position 0 is not in \[0, 2\^48\)/],
    ['negkey', { 'emb.keys': { dtype: 'I64', shape: [1], bytes: raw(BigInt64Array.of(-1n)) }, 'emb.values': f32(1) }, /key -1 at position 0 is not in \[0, 2\^48\)/],
    ['f16', { 'emb.keys': u64(1n), 'emb.values': { dtype: 'F16', shape: [1, 2], bytes: new Uint8Array(4) } }, /dtype F16; expected F32 \(or F64\)/],
  ];
  for (const [name, tensors, re] of cases) {
    const p = join(dir, `${name}.safetensors`);
    writeFileSync(p, numpyFile(tensors));
    try { await loadTableStores([p]); assert.unreachable(`${name} should fail`); } catch (e) {
      assert.match((e as Error).message, re, name);
      assert.match((e as Error).message, new RegExp(`${name}\\.safetensors`), `${name}: names the file`);
    }
  }
  // Two files that disagree on the table's width.
  const d2 = freshDir();
  await saveTableStores(d2, 'a', [new TableStore({ ...emb, dim: 2, expectedRows: 0 })], { step: 0 });
  await saveTableStores(d2, 'b', [new TableStore({ ...emb, dim: 3 })], { step: 0 });
  try { await loadTableStores(await listShardFiles(d2)); assert.unreachable(); } catch (e) {
    assert.match((e as Error).message, /table 'emb': .*b\.safetensors has width 3, .*a\.safetensors has 2/);
  }
  try { await saveTableStores(d2, '../escape', [], { step: 0 }); assert.unreachable(); } catch (e) {
    assert.match((e as Error).message, /shard name "\.\.\/escape"/);
  }
});

test('zero-row tables keep their width; temp files are skipped by the listing', async () => {
  const dir = freshDir();
  const saved = await saveTableStores(dir, 's', [new TableStore(emb)], { step: 0 });
  writeFileSync(join(dir, '.s.safetensors.123-abcd.tmp'), 'partial');
  assert.equal(await listShardFiles(dir), saved.files);
  const t = (await loadTableStores(saved.files)).get('emb')!;
  assert.is(t.keys.length, 0);
  assert.is(t.dim, 4);
  assert.equal(Object.keys(t.slots).sort(), ['m', 'v']);
});

test('manifest.json: written atomically, read back with file checks, path traversal refused', async () => {
  const dir = freshDir();
  const r = rng(seed + 2);
  const s = trained(emb, BigUint64Array.of(1n, 2n, 3n), r);
  const saved = await saveTableStores(dir, 'server-0', [s], { step: 9 });
  assert.equal(await checkpointFiles(dir), saved.files, 'without a manifest: the listing');
  const files = saved.files.map((p) => ({ path: p, shard: 'server-0', bytes: saved.bytes, rows: saved.rows, tables: saved.tables }));
  const path = await writeManifest(dir, { step: 9, model: { tables: [{ name: 'emb', dim: 4 }] }, cluster: { servers: 1, workers: 2, replicas: 1, epoch: 4 }, files });
  const m = await readManifest(dir);
  assert.is(m.format, 'hybridps-checkpoint');
  assert.is(m.version, 1);
  assert.is(m.step, 9);
  assert.equal(m.cluster, { servers: 1, workers: 2, replicas: 1, epoch: 4 });
  assert.equal(m.files[0]!.path, 'server-0.safetensors', 'stored relative to the directory');
  assert.equal(m.paths, saved.files);
  assert.equal(m.model, { tables: [{ name: 'emb', dim: 4 }] });
  assert.equal(await checkpointFiles(dir), saved.files);
  // A listed file that changed size, or is missing, makes the checkpoint unreadable.
  const good = readFileSync(path, 'utf8');
  writeFileSync(path, good.replace(`"bytes": ${saved.bytes}`, `"bytes": ${saved.bytes + 1}`));
  await rejectsWith(readManifest(dir), /lists server-0\.safetensors with \d+ bytes, the file has \d+/);
  writeFileSync(path, good.replace('server-0.safetensors', 'server-9.safetensors'));
  await rejectsWith(readManifest(dir), /lists server-9\.safetensors, which is missing/);
  writeFileSync(path, good.replace('server-0.safetensors', '../../etc/passwd'));
  await rejectsWith(readManifest(dir), /must be a file name inside the checkpoint directory/);
  writeFileSync(path, good.replace('"version": 1', '"version": 2'));
  await rejectsWith(readManifest(dir), /version 2 is not supported/);
  writeFileSync(path, '{ not json');
  await rejectsWith(readManifest(dir), /manifest\.json: not valid JSON/);
  await rejectsWith(writeManifest(dir, { step: -1, model: null, cluster: { servers: 1, workers: 1 }, files }), /step -1/);
  await rejectsWith(writeManifest(dir, { step: 1, model: null, cluster: { servers: 1, workers: 1 }, files: [{ ...files[0]!, path: '/elsewhere/x.safetensors' }] }), /not inside the checkpoint directory/);
});

async function rejectsWith(p: Promise<unknown>, re: RegExp): Promise<void> {
  try { await p; } catch (e) { assert.match((e as Error).message, re); return; }
  assert.unreachable(`expected an error matching ${re}`);
}

test('cleanup', () => { rmSync(root, { recursive: true, force: true }); });

test.run();
