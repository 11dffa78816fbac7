// The op buffer in the allreduce's WebAssembly memory (src/allreduce/wasm-arena.ts, simd-add.ts):
// the arena's regions stay valid across growth and are reused once released (misuse refused with
// the cause); an allreduce on allreduceBuffer() arrays adds in place (no block copied in and out)
// and gives the same bits as on plain arrays, for the ring, halving/doubling and the exchange, f32
// and f16, W = 2..4; and closed rings give their receive buffers back to the arena.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RingAllreduce, allreduceBuffer, releaseAllreduceBuffer } from '../src/allreduce/index.ts';
import { WasmArena } from '../src/allreduce/wasm-arena.ts';
import { addCounts, simdArena } from '../src/allreduce/simd-add.ts';
import { SECRET } from './helpers/secret.ts';
import { randomFloats } from './helpers/random.ts';
import { until } from './helpers/ring-data.ts';

const bits = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);

test('arena: views made before a grow stay valid; released regions are reused; misuse is refused with the cause', () => {
  const arena = WasmArena.create();
  assert.ok(arena, 'this Node has shared WebAssembly memory');
  const first = arena.floats(1000);
  first.set(randomFloats(1000, 1));
  const before = first.slice();
  const big = arena.floats(40 << 20 >> 2); // 40 MiB: past the first 16 MiB, so the memory grows
  assert.is.not(big.buffer, first.buffer, 'the memory grew (a new SharedArrayBuffer object)');
  big.fill(7);
  assert.ok(bits(first).equals(bits(before)), 'the view made before the grow still reads its values');
  assert.ok(arena.owns(first) && arena.owns(big), 'both views are recognised as the arena\'s');
  assert.not.ok(arena.owns(new Float32Array(4)), 'a plain array is not');
  assert.ok(big.byteOffset >= first.byteOffset + first.byteLength, 'regions do not overlap');
  const held = arena.bytesHeld;
  arena.release(first);
  assert.is(arena.bytesHeld, held - 4032, 'the region (1000 floats, 64-byte aligned) is given back');
  const again = arena.floats(500);
  assert.is(again.byteOffset, first.byteOffset, 'a released region is handed out again');
  assert.ok(again.every((x) => x === 0), 'and zeroed');
  assert.throws(() => arena.release(new Float32Array(8)), /not a buffer from allreduceBuffer/);
  arena.release(again);
  assert.throws(() => arena.release(again), /released already/);
  assert.throws(() => arena.floats(-1), /non-negative integer/);
  arena.release(big);
  assert.is(arena.bytesHeld, 0, 'everything given back');
});

const CASES = [
  { w: 2, kind: 'exchange', n: 3001, f16: false },
  { w: 2, kind: 'ring', n: 70_001, f16: false },
  { w: 3, kind: 'ring', n: 90_007, f16: false },
  { w: 3, kind: 'ring', n: 50_001, f16: true },
  { w: 4, kind: 'halving', n: 100_003, f16: false },
  { w: 4, kind: 'halving', n: 40_001, f16: true },
  { w: 4, kind: 'ring', n: 65_537, f16: false },
] as const;

test('an op buffer from allreduceBuffer is added to in place, with the same bits as a plain one (ring, halving/doubling, exchange; f32, f16)', async () => {
  const arena = simdArena();
  assert.ok(arena, 'this Node has the SIMD add over shared memory');
  const heldBefore = arena.bytesHeld;
  for (const { w, kind, n, f16 } of CASES) {
    const rs = await Promise.all(Array.from({ length: w }, (_, i) => RingAllreduce.create({
      nodeId: `b${i}`, secret: SECRET, timeoutMs: 30_000, segmentBytes: 16 << 10,
      exchangeMaxBytes: kind === 'exchange' ? Number.MAX_SAFE_INTEGER : 0, halvingMinBytes: kind === 'halving' ? 0 : Infinity,
    })));
    const name = `W=${w} ${kind} n=${n}${f16 ? ' f16' : ''}`;
    try {
      const members = rs.map((r) => ({ nodeId: r.nodeId, address: r.url }));
      for (const r of rs) r.setRing(members, 1);
      const inputs = rs.map((_, r) => randomFloats(n, 17 * n + r));
      const plain = inputs.map((x) => x.slice());
      const c0 = { ...addCounts };
      await Promise.all(rs.map((r, i) => r.allreduce(plain[i]!, 'sum', { f16 })));
      assert.ok(addCounts.copied > c0.copied, `${name}: a plain buffer takes the copy-in/out path`);
      assert.is(addCounts.inPlace, c0.inPlace, `${name}: and never the in-place one`);
      const wasm = inputs.map((x) => { const b = allreduceBuffer(n); b.set(x); return b; });
      const c1 = { ...addCounts };
      await Promise.all(rs.map((r, i) => r.allreduce(wasm[i]!, 'sum', { f16 })));
      const added = addCounts.inPlace - c1.inPlace;
      // Every rank adds (W-1)/W of the buffer (twice that for the exchange, which adds all of it on both ranks).
      assert.ok(added >= (kind === 'exchange' ? w * n : (w - 1) * n), `${name}: every add in place (${added} floats)`);
      assert.is(addCounts.copied, c1.copied, `${name}: no block copied in and out`);
      for (let i = 0; i < w; i++) assert.ok(bits(wasm[i]!).equals(bits(plain[0]!)), `${name}: rank ${i} holds the plain run's bits`);
      assert.ok(plain.every((p) => bits(p).equals(bits(plain[0]!))), `${name}: every rank the same bits`);
      for (const b of wasm) releaseAllreduceBuffer(b);
    } finally {
      await Promise.all(rs.map((r) => r.close()));
    }
  }
  // Each receiver gives its region back once its socket has closed.
  await until('closed rings give their receive buffers back', () => arena.bytesHeld === heldBefore, 10_000);
});

test.run();
