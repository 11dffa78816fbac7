// The keys module: word views, number <-> words, and the 2^48 check, at the edges of the range.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KEY_LIMIT, firstKeyOutOfRange, keyAt, keyHi, keyLo, keyNumber, keyRangeProblem, keyWords, keysFromNumbers, keysToNumbers } from '../src/keys/keys.ts';

const edges = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 123456789012345, KEY_LIMIT - 1];

test('numbers -> BigUint64Array -> words -> numbers round-trips at the edges', () => {
  const keys = keysFromNumbers(edges);
  assert.equal(Array.from(keys), edges.map(BigInt));
  const w = keyWords(keys);
  edges.forEach((k, i) => {
    assert.is(keyAt(w, i), k);
    assert.is(keyNumber(keyLo(k), keyHi(k)), k);
    assert.is(w[2 * i], keyLo(k));
    assert.is(w[2 * i + 1], keyHi(k));
  });
  assert.equal(Array.from(keysToNumbers(keys)), edges);
});

test('keyWords views a subarray without copying', () => {
  const all = keysFromNumbers([7, 8, 9]);
  const w = keyWords(all.subarray(1));
  assert.is(w.length, 4);
  assert.is(w[0], 8);
  w[0] = 42;
  assert.is(all[1], 42n);
});

test('the 2^48 check names the first bad key and its position', () => {
  assert.is(firstKeyOutOfRange(keysFromNumbers(edges)), -1);
  assert.is(keyRangeProblem(keysFromNumbers(edges)), null);
  const bad = BigUint64Array.from([1n, 2n ** 48n, 2n ** 63n]);
  assert.is(firstKeyOutOfRange(bad), 1);
  assert.match(keyRangeProblem(bad)!, /key 281474976710656 at position 1 is not below 2\^48/);
});

test.run();
