// The pure pieces of cutting a request into per-server parts (src/client/row-parts.ts): failed
// parts merged per push number before they are re-routed, so no batch to one server carries one
// number twice (the server refuses such a batch as malformed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mergeBySeq, isIdentity } from '../src/client/row-parts.ts';

test('mergeBySeq: the pieces of one push number become one part, each position once, others untouched', () => {
  const merged = mergeBySeq([
    { idx: Int32Array.of(4, 9), seq: 7 },
    { idx: Int32Array.of(1), seq: 8 },
    { idx: Int32Array.of(2, 5), seq: 7 },
  ]);
  assert.is(merged.length, 2);
  const seven = merged.find((p) => p.seq === 7)!, eight = merged.find((p) => p.seq === 8)!;
  assert.equal([...seven.idx].sort((a, b) => a - b), [2, 4, 5, 9]);
  assert.equal([...eight.idx], [1]);
  assert.equal(mergeBySeq([]), []);
});

test('isIdentity: every key in order', () => {
  assert.ok(isIdentity(Int32Array.of(0, 1, 2), 3));
  assert.not.ok(isIdentity(Int32Array.of(0, 2), 3));
  assert.ok(isIdentity(new Int32Array(0), 0));
});

test.run();
