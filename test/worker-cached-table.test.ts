// CachedTable (src/worker/cached-table.ts) against a real server on loopback, no GPU: with
// second-touch admission (the default) a stateless SSP table holds a missing row only when its
// key was looked up in the last ADMIT_WINDOW clocks, so a row seen once is pulled, used and not
// copied into the cache; a row seen again is held, then served; every row served equals the
// server's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, allJoined } from './helpers/cluster.ts';
import { CachedTable } from '../src/worker/cached-table.ts';
import { psTableSpec } from '../src/worker/ps-table-specs.ts';
import type { TableDecl } from '../src/model/model-spec.ts';

const DIM = 4;
const decl: TableDecl = { name: 't', dim: DIM, rows: 100, init: 'uniform', initScale: 0.5, optimizer: 'sgd', hyper: { lr: 0.1 }, consistency: 'ssp', staleness: 2 };

test('second-touch (stateless SSP): rows seen once are not held; seen again, held, then served as the server has them', async () => {
  const cluster = await startCluster({ servers: 1 });
  try {
    const client = await cluster.client('worker-0');
    await allJoined([client], 1);
    await client.declareTables([psTableSpec(decl, 3, 5n)]);
    const ct = CachedTable.for(decl, 3, client, { rows: 64, aspRefresh: 2 })!;
    assert.ok(ct, 'an SSP SGD table is cached');
    const keys = BigUint64Array.from([5n, 9n, 11n]), fresh = await client.pull(3, keys);
    const step = async (clock: number) => {
      const { rows } = await ct.rows(3, keys, clock, null, null, false);
      assert.equal(Array.from(rows), Array.from(fresh), `clock ${clock}: the server's rows`);
      await client.clock();
    };
    await step(0);
    assert.is(ct.cache.size, 0, 'seen once: pulled, not held');
    assert.is(ct.cache.stats.hits, 0);
    await step(1);
    assert.is(ct.cache.size, 3, 'seen again within the window: held');
    assert.is(ct.cache.stats.hits, 0);
    await step(2);
    assert.is(ct.cache.stats.hits, 3, 'then served from the cache');
  } finally {
    await cluster.close();
  }
});

test.run();
