// Worker failures and elasticity under BSP: a dead worker stops counting (the others' pulls go
// on), and a worker joining mid-run starts at the current clock with the current parameters.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startCluster, allJoined, table, keysOf, settledWithin } from './helpers/cluster.ts';

const keys = keysOf(1, 2, 3);
const spec = table({ id: 1, dim: 2, optimizer: 'sgd', hyper: { lr: -1 } });
const ones = new Float32Array(6).fill(1);

test('BSP continues with the live workers when one dies mid-clock', async () => {
  const c = await startCluster({ servers: 2 }); // the dying worker leaves by closing its links, not by falling silent
  try {
    const ws = [await c.client('a'), await c.client('b'), await c.client('dies')];
    await allJoined(ws, 3);
    for (const w of ws) await w.declareTables([spec]);
    for (const w of ws) { await w.push(1, keys, ones, { clock: 0 }); }
    await ws[0]!.clock(); await ws[1]!.clock();
    const blocked = ws[0]!.pull(1, keys, { clock: 1 });
    assert.is(await settledWithin(blocked, 200), 'pending', 'waits for the third worker');
    await ws[2]!.close(); // leaves without finishing clock 0
    const v = await blocked;
    assert.ok(v.every((x) => x === 3), `clock 0 applied with all three pushes once the dead worker left: ${Array.from(v)}`);
  } finally { await c.close(); }
});

test('a worker joining mid-run starts at the current clock and sees current parameters', async () => {
  const c = await startCluster({ servers: 2 });
  try {
    const ws = [await c.client('a'), await c.client('b')];
    await allJoined(ws, 2);
    for (const w of ws) await w.declareTables([spec]);
    for (let clock = 0; clock < 3; clock++) {
      await Promise.all(ws.map(async (w) => { await w.push(1, keys, ones, { clock }); await w.clock(); }));
    }
    const late = await c.client('late');
    await allJoined([...ws, late], 3);
    await late.declareTables([spec]);
    assert.is(await late.joinClock(), 3);
    const seen = await late.pull(1, keys, { clock: late.clockValue });
    assert.ok(seen.every((x) => x === 6), `current parameters: ${Array.from(seen)}`);
    await Promise.all([...ws, late].map(async (w) => { await w.push(1, keys, ones, { clock: 3 }); await w.clock(); }));
    const after = await ws[0]!.pull(1, keys, { clock: 4 });
    assert.ok(after.every((x) => x === 9), `clock 3 has all three workers' pushes: ${Array.from(after)}`);
  } finally { await c.close(); }
});

test.run();
