// The names every layer shares, defined once: consistency models and built-in update functions.
// Flags (`--consistency ssp:2`, `--optimizer emb=ftrl`), model declarations, the wire's enum and
// the server's update-function registry all read these lists, so adding a name is one edit here.
import { Consistency } from './generated/hybridps/wire.ts';

export const CONSISTENCY_NAMES = ['bsp', 'ssp', 'asp'] as const;
export type ConsistencyName = (typeof CONSISTENCY_NAMES)[number];

/** A table's consistency model: BSP, SSP with a staleness bound, or ASP. */
export interface ConsistencyModel { kind: ConsistencyName; staleness: number }

const WIRE_CONSISTENCY: Record<ConsistencyName, Consistency> = { bsp: Consistency.BSP, ssp: Consistency.SSP, asp: Consistency.ASP };

/** The wire enum of a consistency name. */
export function consistencyCode(name: ConsistencyName): Consistency {
  return WIRE_CONSISTENCY[name];
}

/** `bsp`, `asp`, `ssp:3` (or `ssp` for a bound of 1). */
export function parseConsistency(s: string): ConsistencyModel {
  const m = new RegExp(`^(${CONSISTENCY_NAMES.join('|')})(?::(\\d+))?$`).exec(s.trim().toLowerCase());
  if (!m) throw new Error(`--consistency ${s}: expected bsp, asp or ssp:N`);
  const kind = m[1] as ConsistencyName;
  if (kind !== 'ssp' && m[2] !== undefined) throw new Error(`--consistency ${s}: only ssp takes a staleness bound`);
  return { kind, staleness: kind === 'ssp' ? Number(m[2] ?? 1) : 0 };
}

/** The flag form of a consistency model (`ssp:2`, `bsp`). */
export function consistencyName(c: ConsistencyModel): string {
  return c.kind === 'ssp' ? `ssp:${c.staleness}` : c.kind;
}

/** Update functions every server has built in (custom ones are loaded from user modules). */
export const BUILTIN_OPTIMIZERS = ['sgd', 'adagrad', 'adam', 'ftrl'] as const;
export type OptimizerName = (typeof BUILTIN_OPTIMIZERS)[number];

/** The update functions the worker's GPU optimizer kernels implement (the hybrid dense part). */
export const DENSE_OPTIMIZERS = ['sgd', 'adagrad', 'adam'] as const;
export type DenseOptimizerName = (typeof DENSE_OPTIMIZERS)[number];

/** True when `name` is one of `names` (a type guard for flag and file input). */
export function isOneOf<T extends string>(names: readonly T[], name: string): name is T {
  return (names as readonly string[]).includes(name);
}
