// AssignRows (how a worker seeds rows, PSClient.assignRange) and CopyRows (rows with their whole
// optimizer state, between servers) are two messages now: assignment sets values with fresh
// optimizer state on every replica, a copy carries the state over unchanged, and a copy in the old
// values-only form is refused. Bad input changes nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, table, keysOf, randomFloats, SECRET } from './helpers/cluster.ts';
import { dial, RemoteError } from '../src/transport/index.ts';
import { Consistency, ErrorCode, Role, type BodyOf } from '../src/wire/codec.ts';
import type { RequestBody } from '../src/wire/replies.ts';
import { readSafetensors } from '../src/checkpoint/safetensors.ts';
import { TableStore } from '../src/server/table-store.ts';
import { Tables } from '../src/server/tables.ts';
import { assignRows, copyRowsBody, importCopiedRows } from '../src/server/row-copy.ts';
import { createLogger } from '../src/util/log.ts';

const DIM = 4;
const spec = table({ id: 3, dim: DIM, init: 'uniform', initScale: 1, optimizer: 'adagrad', hyper: { lr: 0.1, initial_accumulator: 0.5 }, consistency: Consistency.ASP });

test('assignRange reaches every replica with fresh optimizer state; later pushes update from there', async () => {
  const c = await startCluster({ servers: 2, replicas: 2 });
  try {
    const w = await c.client('worker-0');
    await w.declareTables([spec]);
    const rowKeys = keysOf(0, 1, 2);
    await w.push(3, rowKeys, randomFloats(3 * DIM, 1)); // the rows had optimizer state before
    const values = randomFloats(10, 2); // 10 floats: rows 0..2, the last one padded with zeros
    await w.assignRange(3, 0, values);
    const padded = new Float32Array(3 * DIM);
    padded.set(values);
    assert.equal(Array.from(await w.pull(3, rowKeys)), Array.from(padded));
    // R = 2 on 2 servers: each shard holds every row, as assigned.
    const dir = mkdtempSync(join(c.checkpointRoot, 'assign-'));
    const files = await w.checkpoint(dir, 1);
    assert.is(files.length, 2);
    for (const f of files) {
      const t = (await readSafetensors(f)).tensors;
      assert.equal(Array.from(t['t3.keys']!.data as BigUint64Array), [0n, 1n, 2n], f);
      assert.equal(Array.from(t['t3.values']!.data as Float32Array), Array.from(padded), `${f}: values`);
      assert.equal(Array.from(t['t3.slot.accumulator']!.data as Float32Array), new Array(3 * DIM).fill(0.5), `${f}: slots at their initial value`);
      assert.equal(Array.from(t['t3.steps']!.data as Uint32Array), [0, 0, 0], `${f}: update counts reset`);
    }
    const g = randomFloats(3 * DIM, 3);
    await w.push(3, rowKeys, g);
    const ref = new TableStore({ ...spec, init: 'uniform' });
    ref.importRows({ keys: rowKeys, values: padded });
    ref.apply(rowKeys, g);
    assert.equal(Array.from(await w.pull(3, rowKeys)), Array.from(ref.pull(rowKeys)), 'updated from the assigned values and fresh state');
  } finally { await c.close(); }
});

test('bad assignments and values-only copies (from a server of the view) are refused; nothing changes', async () => {
  const c = await startCluster({ servers: 1 });
  try {
    const w = await c.client('good');
    await w.declareTables([spec]);
    const keys = keysOf(1, 2, 3);
    const before = await w.pull(3, keys);
    // Under a server's identity: only servers of the view and the rank-0 worker may assign or copy rows.
    const { conn } = await dial(c.servers[0]!.url, { nodeId: 'server-0', secret: SECRET, role: Role.Server, epoch: () => w.view.epoch });
    const expectError = async (body: RequestBody, code: ErrorCode, pattern: RegExp) => {
      const e = await conn.request(body).then(() => null, (err: Error) => err);
      assert.instance(e, RemoteError, `${body.type} should be refused`);
      assert.is(ErrorCode[(e as RemoteError).code], ErrorCode[code], (e as Error).message);
      assert.match((e as Error).message, pattern);
    };
    const assign = (over: Partial<BodyOf<'assignRows'>>): RequestBody => ({ type: 'assignRows', table: 3, keys, values: new Float32Array(12), ...over });
    await expectError(assign({ values: new Float32Array(11) }), ErrorCode.BadDimension, /do not match/);
    await expectError(assign({ values: new Float32Array(12).fill(NaN) }), ErrorCode.NonFinite, /assignRows value 0 is not finite/);
    await expectError(assign({ keys: BigUint64Array.of(2n ** 50n, 1n, 2n) }), ErrorCode.Malformed, /2\^48/);
    await expectError(assign({ table: 9 }), ErrorCode.UnknownTable, /unknown table 9/);
    // The old assignment form of CopyRows (values, no slots, no update counts): copies carry the state.
    await expectError({ type: 'copyRows', table: 3, keys, values: new Float32Array(12), slots: new Float32Array(0), slotCount: 0, steps: new Uint32Array(0) },
      ErrorCode.BadDimension, /do not match dim 4 with 1 slots/);
    assert.equal(Array.from(await w.pull(3, keys)), Array.from(before), 'table unchanged');
    assert.is((await conn.request({ type: 'assignRows', table: 3, keys, values: new Float32Array(12).fill(2) })).body.type, 'ok');
    assert.equal(Array.from(await w.pull(3, keys)), new Array(12).fill(2));
    await conn.close();
  } finally { await c.close(); }
});

test('a copy carries values, slots and update counts over unchanged; an assignment resets the state', () => {
  const from = new Tables(createLogger('test')), to = new Tables(createLogger('test'));
  from.declare([spec]);
  to.declare([spec]);
  const src = from.get(3), dst = to.get(3);
  const keys = keysOf(5, 2 ** 40, 7, 9);
  src.store.apply(keys, randomFloats(4 * DIM, 4));
  src.store.apply(keysOf(5, 7), randomFloats(2 * DIM, 5));
  const rows = src.store.exportRows();
  dst.store.apply(keysOf(7), randomFloats(DIM, 6)); // replaced by the copy
  importCopiedRows(dst, copyRowsBody(src, rows, [0, 1, 2, 3]));
  assert.equal(dst.store.exportRows(), rows, 'values, slots and steps as the source holds them');
  // A copy of some rows only.
  const part = copyRowsBody(src, rows, [2]);
  assert.equal(Array.from(part.keys), [rows.keys[2]]);
  assert.is(part.slotCount, 1);
  assert.equal(Array.from(part.steps), [rows.steps[2]]);
  assignRows(dst, { type: 'assignRows', table: 3, keys: keysOf(5, 9), values: new Float32Array(2 * DIM).fill(-1) });
  const after = dst.store.exportRows();
  const at = (k: bigint) => after.keys.indexOf(k);
  for (const k of [5n, 9n]) {
    assert.equal(Array.from(after.values.subarray(at(k) * DIM, (at(k) + 1) * DIM)), [-1, -1, -1, -1]);
    assert.equal(Array.from(after.slots[0]!.subarray(at(k) * DIM, (at(k) + 1) * DIM)), [0.5, 0.5, 0.5, 0.5]);
    assert.is(after.steps[at(k)], 0);
  }
  assert.is(after.steps[at(7n)], rows.steps[rows.keys.indexOf(7n)], 'rows not assigned keep their state');
});

test.run();
