// The parameter servers' table specs of a model: one per embedding table (ids in spec order, a
// seed each), and the range table that holds the dense vector in pure-PS mode. What a worker
// declares before its first step (WorkerStep pulls and pushes these ids).
import type { TableSpecMsg } from '../wire/codec.ts';
import type { ModelSpec, TableDecl, ConsistencyName, OptimizerName } from '../model/model-spec.ts';
import { consistencyCode } from '../wire/vocabulary.ts';

/** The PS table spec of a model table. */
export function psTableSpec(t: TableDecl, id: number, seed: bigint): TableSpecMsg {
  return {
    id, name: t.name, dim: t.dim, init: t.init, initScale: t.initScale, seed, optimizer: t.optimizer,
    hyper: t.hyper, consistency: consistencyCode(t.consistency), staleness: t.staleness ?? 0,
  };
}

/** PS specs for every table of the model, ids firstId, firstId+1, ... */
export function psTableSpecs(spec: ModelSpec, firstId = 1, seed = 7n): { specs: TableSpecMsg[]; tableIds: number[] } {
  const specs = spec.tables.map((t, i) => psTableSpec(t, firstId + i, seed + BigInt(i)));
  return { specs, tableIds: specs.map((s) => s.id) };
}

/**
 * The range table holding the dense vector in pure-PS mode (rows of `block` floats). The caller
 * pushes the initial values once (e.g. `initDensePs`) since range rows start from the initializer.
 */
export function psDenseTableSpec(id: number, block: number, opt: { optimizer: OptimizerName; hyper: Record<string, number>; consistency?: ConsistencyName }): TableSpecMsg {
  return {
    id, name: 'dense_params', dim: block, init: 'zeros', initScale: 0, seed: 0n, optimizer: opt.optimizer, hyper: opt.hyper,
    consistency: consistencyCode(opt.consistency ?? 'bsp'), staleness: 0,
  };
}
