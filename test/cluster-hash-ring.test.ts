// HashRing's bucketed point lookup (hash-ring.ts): the owner and the chain of every hash are
// those of the plain definition, the first vnode point at or after the hash, wrapping past the
// last, on rings of 1 to 300 servers, for random hashes and for the points themselves and their
// neighbours, where a bucketed lookup would go wrong first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HashRing, keyHash } from '../src/cluster/hash-ring.ts';
import { mulberry32 } from '../src/util/hash.ts';

/** The definition, by a scan over the sorted points. */
function ownerByScan(ring: HashRing, h: number): number {
  const p = ring.positions, owners = ring.pointOwners;
  for (let i = 0; i < p.length; i++) if (p[i]! >= h) return owners[i]!;
  return owners[0]!;
}

test('hash ring: bucketed owner and chain lookups equal the definition', () => {
  const rnd = mulberry32(99);
  for (const [servers, vnodes] of [[1, 64], [2, 64], [3, 7], [8, 64], [300, 64]] as const) {
    const ids = Array.from({ length: servers }, (_, s) => `server-${s}`);
    const ring = new HashRing(ids, vnodes);
    const p = ring.positions;
    const hashes: number[] = [0, 1, 0xffffffff, 0xfffffffe, 2 ** 31, 2 ** 31 - 1];
    for (let i = 0; i < p.length; i++) hashes.push(p[i]!, (p[i]! + 1) >>> 0, (p[i]! - 1) >>> 0);
    for (let i = 0; i < 5000; i++) hashes.push(Math.floor(rnd() * 2 ** 32));
    for (const h of hashes) {
      const want = ownerByScan(ring, h);
      assert.is(ring.ownerOfHash(h), want, `${servers} servers, hash ${h}`);
      const chain = ring.chainOfHash(h, 3);
      assert.is(chain[0], want);
      assert.is(chain.length, Math.min(3, servers));
      assert.is(new Set(chain).size, chain.length, 'distinct servers in a chain');
    }
  }
});

test('hash ring: partition places each key where ownerOfHash does', () => {
  const ring = new HashRing(['a', 'b', 'c', 'd', 'e'], 64);
  const keys = BigUint64Array.from({ length: 20_000 }, (_, i) => BigInt(i) * 0x9e3779b97f4a7c15n % 2n ** 48n);
  const parts = ring.partition(3, keys);
  assert.is(parts.reduce((a, q) => a + q.length, 0), keys.length);
  const words = new Uint32Array(keys.buffer);
  parts.forEach((q, s) => q.forEach((i) => {
    assert.is(ring.ownerOfHash(keyHash(3, words[2 * i]!, words[2 * i + 1]!)), s);
  }));
});

test.run();
