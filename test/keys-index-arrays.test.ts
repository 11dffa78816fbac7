// The routing helpers the client splits requests with: positions, key gathers (as u32 word
// pairs, so keys above 2^32 must survive), and mapping a subset's positions back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compose, gatherKeys, iota } from '../src/keys/index-arrays.ts';

test('iota', () => {
  assert.equal(Array.from(iota(5)), [0, 1, 2, 3, 4]);
  assert.is(iota(0).length, 0);
});

test('gatherKeys copies whole 64-bit keys in the order asked, from a view at an offset too', () => {
  const all = BigUint64Array.from([7n, 2n ** 47n + 3n, 0n, 2n ** 40n, 5n]);
  const view = all.subarray(1); // byteOffset 8
  assert.equal(Array.from(gatherKeys(view, Int32Array.from([2, 0, 3, 0]))), [2n ** 40n, 2n ** 47n + 3n, 5n, 2n ** 47n + 3n]);
  assert.is(gatherKeys(view, new Int32Array(0)).length, 0);
});

test('compose maps positions in a subset back to the original', () => {
  assert.equal(Array.from(compose(Int32Array.from([4, 9, 1]), Int32Array.from([2, 0]))), [1, 4]);
});

test.run();
