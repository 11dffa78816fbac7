// Consistency semantics on real servers over loopback: BSP equals one minibatch update from the
// summed gradient and never shows a half-applied clock; SSP blocks exactly beyond its bound;
// ASP loses nothing under concurrent pushes from separate processes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startCluster, allJoined, table, keysOf, randomFloats, settledWithin, HANG_GUARD_MS } from './helpers/cluster.ts';
import { Consistency } from '../src/wire/codec.ts';

test('BSP: two workers\' pushes give exactly one AdaGrad update from the summed gradient', async () => {
  const c = await startCluster({ servers: 2 });
  try {
    const [a, b] = [await c.client('wa'), await c.client('wb')];
    await allJoined([a, b], 2);
    const dim = 8, lr = 0.5, eps = 1e-8, acc0 = 0.1;
    const spec = table({ id: 3, dim, init: 'uniform', initScale: 0.5, optimizer: 'adagrad', hyper: { lr, eps, initial_accumulator: acc0 } });
    await a.declareTables([spec]);
    await b.declareTables([spec]);
    const keys = keysOf(1, 5, 9, 1000, 77777);
    const w0 = await a.pull(3, keys, { clock: 0 });
    const ga = randomFloats(keys.length * dim, 1), gb = randomFloats(keys.length * dim, 2);
    await a.push(3, keys, ga, { clock: 0 });
    await a.clock();
    // a's pull at clock 1 must wait for b: the clock is not applied until every live worker finished it.
    const early = a.pull(3, keys, { clock: 1 });
    assert.is(await settledWithin(early, 300), 'pending', 'BSP pull must wait for the slow worker');
    await b.push(3, keys, gb, { clock: 0 });
    await b.clock();
    const w1 = await early;
    const wb = await b.pull(3, keys, { clock: 1 });
    for (let i = 0; i < w1.length; i++) {
      const g = ga[i]! + gb[i]!;
      const acc = acc0 + g * g;
      const want = w0[i]! - (lr * g) / (Math.sqrt(acc) + eps);
      assert.ok(Math.abs(w1[i]! - want) <= 1e-6 * Math.max(1, Math.abs(want)), `row value ${i}: got ${w1[i]}, want ${want}`);
      assert.is(wb[i], w1[i], 'both workers see the same parameters');
    }
  } finally { await c.close(); }
});

test('BSP: a pull never sees a half-applied clock across several clocks', async () => {
  const c = await startCluster({ servers: 3 });
  try {
    const ws = [await c.client('w0'), await c.client('w1'), await c.client('w2')];
    await allJoined(ws, 3);
    const spec = table({ id: 1, dim: 4, optimizer: 'sgd', hyper: { lr: -1 } });
    for (const w of ws) await w.declareTables([spec]);
    const keys = keysOf(0, 1, 2, 3, 4, 5, 6, 7);
    for (let clock = 0; clock < 4; clock++) {
      // Each worker adds 1 to every value; after clock c is applied every value is 3(c+1).
      await Promise.all(ws.map(async (w, i) => {
        await new Promise((r) => setTimeout(r, i * 20));
        const seen = await w.pull(1, keys, { clock });
        assert.ok(seen.every((v) => v === 3 * clock), `worker ${i} at clock ${clock} saw ${seen[0]}`);
        await w.push(1, keys, new Float32Array(keys.length * 4).fill(1), { clock });
        await w.clock();
      }));
    }
  } finally { await c.close(); }
});

test('SSP(s=2): the fast worker blocks exactly when it would get more than 2 clocks ahead', async () => {
  const c = await startCluster({ servers: 2 });
  try {
    const [fast, slow] = [await c.client('fast'), await c.client('slow')];
    await allJoined([fast, slow], 2);
    const spec = table({ id: 2, dim: 2, consistency: Consistency.SSP, staleness: 2 });
    await fast.declareTables([spec]);
    await slow.declareTables([spec]);
    const keys = keysOf(10, 20);
    for (let c2 = 0; c2 <= 2; c2++) {
      assert.is(await settledWithin(fast.pull(2, keys, { clock: fast.clockValue }), HANG_GUARD_MS), 'settled', `clock ${fast.clockValue} is within the bound`);
      await fast.clock();
    }
    // fast finished 3 clocks, slow 0: a pull at clock 3 is 3 > s ahead and must block.
    const blocked = fast.pull(2, keys, { clock: fast.clockValue });
    assert.is(await settledWithin(blocked, 300), 'pending', 'pull 3 clocks ahead must wait');
    await slow.clock(); // slowest now at 1: 3 - 1 = 2 <= s
    assert.is(await settledWithin(blocked, HANG_GUARD_MS), 'settled', 'released once the slow worker advanced');
    await fast.clock(); // fast at 4, slow at 1
    const again = fast.pull(2, keys, { clock: fast.clockValue });
    assert.is(await settledWithin(again, 300), 'pending');
    await slow.clock();
    await again;
  } finally { await c.close(); }
});

test('ASP: concurrent +1 pushes from 3 processes end at exactly the count pushed', async () => {
  const c = await startCluster({ servers: 2 });
  try {
    const setup = await c.client('setup');
    const spec = table({ id: 4, dim: 4, consistency: Consistency.ASP, optimizer: 'sgd', hyper: { lr: -1 } });
    await setup.declareTables([spec]);
    const procs = 3, rounds = 40, nkeys = 64;
    const pusher = fileURLToPath(new URL('./helpers/asp-pusher.ts', import.meta.url));
    const codes = await Promise.all(Array.from({ length: procs }, (_, i) => new Promise<number>((resolve) => {
      const p = spawn(process.execPath, ['--import', 'tsx', pusher], {
        env: { ...process.env, SCHEDULER: c.scheduler.url, NODE_ID: `pusher-${i}`, ROUNDS: String(rounds), NKEYS: String(nkeys) },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      p.on('exit', (code) => resolve(code ?? 1));
    })));
    assert.equal(codes, [0, 0, 0], 'every pusher exits cleanly');
    const keys = BigUint64Array.from({ length: nkeys }, (_, i) => BigInt(i * 7919));
    const v = await setup.pull(4, keys);
    assert.ok(v.every((x) => x === procs * rounds), `every value is ${procs * rounds}, got ${[...new Set(v)].join(',')}`);
  } finally { await c.close(); }
});

test('row initialisation is identical with 1 and with 3 servers', async () => {
  const keys = BigUint64Array.from({ length: 500 }, (_, i) => BigInt(i * 1_000_003 + 17));
  const spec = table({ id: 9, dim: 16, init: 'normal', initScale: 0.1, seed: 1234n });
  const rows: Float32Array[] = [];
  for (const n of [1, 3]) {
    const c = await startCluster({ servers: n });
    try {
      const cl = await c.client();
      await cl.declareTables([spec]);
      rows.push(await cl.pull(9, keys));
    } finally { await c.close(); }
  }
  assert.equal(Array.from(rows[0]!), Array.from(rows[1]!));
  assert.ok(rows[0]!.some((x) => x !== 0));
});

test.run();
