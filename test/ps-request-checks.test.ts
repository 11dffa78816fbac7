// The server's request checks answer with an error code and a sentence naming the cause: the
// code is decided where the problem is found, never read back from the sentence.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkFinite, checkKeys, firstNonFinite, pushProblem, refuse } from '../src/server/request-checks.ts';
import { RpcError } from '../src/transport/index.ts';
import { ErrorCode } from '../src/wire/codec.ts';

const K = (...ks: (number | bigint)[]) => BigUint64Array.from(ks, (k) => BigInt(k));

test('pushProblem gives each cause its code (the messages: store-table\'s checkPush test)', () => {
  const k = K(1, 2, 3);
  assert.is(pushProblem(2, k, new Float32Array(6)), null);
  assert.is(pushProblem(1, K((1n << 48n) - 1n), Float32Array.of(1)), null, '2^48 - 1 is a valid row id');
  assert.is(pushProblem(2, k, new Float32Array(5))!.code, ErrorCode.BadDimension);
  for (const bad of [NaN, Infinity, -Infinity]) {
    const v = new Float32Array(6); v[3] = bad;
    assert.is(pushProblem(2, k, v)!.code, ErrorCode.NonFinite);
  }
  assert.is(pushProblem(1, K(4, 5, 4), new Float32Array(3))!.code, ErrorCode.Malformed, 'a key twice');
  assert.equal(pushProblem(1, K(1, 1n << 48n), new Float32Array(2)), checkKeys(K(1, 1n << 48n)), 'a key beyond 2^48: the same problem as checkKeys');
});

test('checkKeys, checkFinite and refuse', () => {
  assert.is(checkKeys(K(0, 2n ** 48n - 1n)), null);
  assert.equal(checkKeys(K(2n ** 50n)), { code: ErrorCode.Malformed, message: 'key 1125899906842624 at position 0 is not below 2^48 (row ids are 48-bit)' });
  assert.is(checkFinite(Float64Array.of(1, -0, 1e308), 'sum'), null);
  assert.equal(checkFinite(Float64Array.of(1, Infinity), 'copyPending sum'), { code: ErrorCode.NonFinite, message: 'copyPending sum 1 is not finite' });
  refuse(null);
  try {
    refuse({ code: ErrorCode.BadDimension, message: 'no' });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, RpcError);
    assert.is((e as RpcError).code, ErrorCode.BadDimension);
    assert.is((e as Error).message, 'no');
  }
});

test('firstNonFinite finds the first bad value at every position, in the four-wide body and the tail', () => {
  for (let n = 0; n <= 11; n++) {
    const v = Float32Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * 3.4e38 * (i + 1) / (n + 1));
    v[0] = n > 0 ? -0 : 0;
    assert.is(firstNonFinite(v), -1, `length ${n}, all finite (-0 and values near the float max)`);
    for (let at = 0; at < n; at++) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const w = v.slice(); w[at] = bad;
        if (at + 2 < n) w[at + 2] = NaN; // a later bad value too: the first one is named
        assert.is(firstNonFinite(w), at, `length ${n}, ${bad} at ${at}`);
      }
    }
  }
  assert.is(firstNonFinite(Float64Array.of(1e308, -1e308, 5e-324)), -1);
});

test('the duplicate check keeps no key from one push to the next, at any push size', () => {
  // The seen-keys index is reused between pushes: a key of an earlier push is not a duplicate.
  const big = BigUint64Array.from({ length: 5000 }, (_, i) => BigInt(i));
  assert.is(pushProblem(1, big, new Float32Array(5000)), null);
  for (let r = 0; r < 3; r++) {
    assert.is(pushProblem(1, K(1, 2, 3), new Float32Array(3)), null, `small push ${r} after a big one`);
    assert.is(pushProblem(1, K(7, 8, 7), new Float32Array(3))!.code, ErrorCode.Malformed, `a duplicate still found, round ${r}`);
    assert.is(pushProblem(1, K(7, 8), new Float32Array(2)), null, 'the refused push left nothing behind');
  }
  assert.is(pushProblem(1, big, new Float32Array(5000)), null, 'the big push again');
});

test.run();
