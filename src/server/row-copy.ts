// Rows written into a table from outside its own updates. CopyRows carries rows with their whole
// optimizer state (slots, update counts) from one server to another: a chain's head copying rows
// to a new replica, or a former holder's page of a handoff. AssignRows sets rows to given values
// with fresh optimizer state: how a worker seeds the dense range table of pure-PS mode; or with
// the optimizer state given: how the rank-0 worker writes back the hot rows the workers kept
// (src/worker/hot-rows.ts). Both are checked completely before any row changes.
import { RpcError } from '../transport/index.ts';
import { ErrorCode, type BodyOf } from '../wire/codec.ts';
import type { TableRows } from './table-store.ts';
import type { TableState } from './tables.ts';
import { checkFinite, checkKeys, refuse } from './request-checks.ts';

/** A CopyRows of rows `idx` of `rows` (an export of table `t`). */
export function copyRowsBody(t: TableState, rows: TableRows, idx: number[]): BodyOf<'copyRows'> {
  const d = t.spec.dim, n = idx.length, sc = rows.slots.length;
  const keys = new BigUint64Array(n), values = new Float32Array(n * d), slots = new Float32Array(n * d * sc), steps = new Uint32Array(n);
  idx.forEach((k, i) => {
    keys[i] = rows.keys[k]!;
    values.set(rows.values.subarray(k * d, (k + 1) * d), i * d);
    for (let s = 0; s < sc; s++) slots.set(rows.slots[s]!.subarray(k * d, (k + 1) * d), s * n * d + i * d);
    steps[i] = rows.steps[k]!;
  });
  return { type: 'copyRows', table: t.spec.id, keys, values, slots, slotCount: sc, steps };
}

/** Writes copied rows with their optimizer state, replacing what `t` held of them. */
export function importCopiedRows(t: TableState, c: BodyOf<'copyRows'>): void {
  const n = c.keys.length, d = t.spec.dim, sc = t.store.slotCount;
  refuse(checkKeys(c.keys));
  const shape = () => new RpcError(ErrorCode.BadDimension,
    `copyRows of ${n} rows: values ${c.values.length}, slots ${c.slots.length} (${c.slotCount}), steps ${c.steps.length} do not match dim ${d} with ${sc} slots`);
  if (c.values.length !== n * d) throw shape();
  refuse(checkFinite(c.values, 'copyRows value'));
  if (c.slotCount !== sc || c.slots.length !== n * d * sc || c.steps.length !== n) throw shape();
  // A NaN or Inf slot leaves the row's value alone but turns it to NaN (or freezes it) at the next push.
  refuse(checkFinite(c.slots, 'copyRows slot'));
  const slots = Array.from({ length: sc }, (_, s) => c.slots.slice(s * n * d, (s + 1) * n * d));
  t.store.importRows({ keys: c.keys.slice(), values: c.values.slice(), slots, steps: c.steps.slice() });
}

/**
 * Sets rows to the given values; their optimizer slots start at their initial values and their
 * update counts at 0, or, with `state`, are the given ones (checked as a copy's).
 */
export function assignRows(t: TableState, a: BodyOf<'assignRows'>): void {
  if (a.state) { importCopiedRows(t, { type: 'copyRows', table: a.table, keys: a.keys, values: a.values, ...a.state }); return; }
  const n = a.keys.length, d = t.spec.dim;
  refuse(checkKeys(a.keys));
  if (a.values.length !== n * d) throw new RpcError(ErrorCode.BadDimension, `assignRows of ${n} rows: ${a.values.length} values do not match dim ${d}`);
  refuse(checkFinite(a.values, 'assignRows value'));
  t.store.importRows({ keys: a.keys.slice(), values: a.values.slice(), slots: [] });
}
