// The ring over mutual TLS (docs/operations.md, "Encrypted links"), real sockets in one process:
// the control links and the data stream are TLS, and the sums are bit for bit those of the plain
// ring (same schedule, same adds) and within the float64 reference's tolerance, at odd lengths.
// A dial to the data port with a certificate from another CA, an expired one, none, or no TLS at
// all is refused in the TLS handshake: the data handshake never runs (no refused stream is
// counted), and the ring goes on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as tlsConnect } from 'node:tls';
import { RingAllreduce } from '../src/allreduce/index.ts';
import { dialData as dialRingData, until, type DataSocketOpener } from './helpers/ring-data.ts';
import { dialTlsOptions } from '../src/transport/tls.ts';
import type { TlsCredentials } from '../src/transport/index.ts';
import { SECRET } from './helpers/secret.ts';
import { randomFloats } from './helpers/random.ts';
import { makeTestPki } from './helpers/tls.ts';

const pki = makeTestPki();

async function ringOf(w: number, tls: TlsCredentials | undefined, halvingMinBytes = Infinity): Promise<RingAllreduce[]> {
  const ids = Array.from({ length: w }, (_, i) => `w${i}`);
  const rings = await Promise.all(ids.map((id) => RingAllreduce.create({ nodeId: id, secret: SECRET, tls, timeoutMs: 20_000, exchangeMaxBytes: 0, halvingMinBytes, segmentBytes: 64 << 10 })));
  for (const r of rings) r.setRing(rings.map((x) => ({ nodeId: x.nodeId, address: x.url })), 1);
  return rings;
}

/** Every rank's sum of its own random input, on one ring. */
async function sums(rings: RingAllreduce[], n: number): Promise<Float32Array[]> {
  const bufs = rings.map((_, i) => randomFloats(n, 100 + i));
  await Promise.all(rings.map((r, i) => r.allreduce(bufs[i]!)));
  return bufs;
}

test('the ring over TLS gives the plain ring\'s bits, within the float64 reference', async () => {
  const n = 300_001; // several 64 KiB segments per block, not a multiple of anything
  const tlsRings = await ringOf(3, pki.good);
  const plainRings = await ringOf(3, undefined);
  try {
    assert.ok(tlsRings.every((r) => r.url.startsWith('wss://')));
    const viaTls = await sums(tlsRings, n);
    const plain = await sums(plainRings, n);
    const inputs = [0, 1, 2].map((i) => randomFloats(n, 100 + i));
    let worst = 0;
    for (let k = 0; k < n; k++) {
      const want = inputs[0]![k]! + inputs[1]![k]! + inputs[2]![k]!; // float64
      worst = Math.max(worst, Math.abs(viaTls[0]![k]! - want));
    }
    assert.ok(worst <= 1e-5 * 3, `max |sum - f64 reference| ${worst} (tolerance 3e-5: two f32 adds of values in [-1, 1))`);
    for (let i = 0; i < 3; i++) {
      assert.ok(Buffer.from(viaTls[i]!.buffer).equals(Buffer.from(plain[i]!.buffer)), `rank ${i}: TLS and plain rings agree bit for bit`);
      assert.ok(Buffer.from(viaTls[i]!.buffer).equals(Buffer.from(viaTls[0]!.buffer)), `rank ${i} has rank 0's bits`);
    }
    assert.ok(tlsRings.every((r) => r.stats.bytesReceived > 0 && r.linkStats.refusedTls === 0));
  } finally {
    await Promise.all([...tlsRings, ...plainRings].map((r) => r.close()));
  }
});

test('halving/doubling over TLS (streams to non-neighbours too) gives the plain run\'s bits', async () => {
  const n = 300_001;
  const tlsRings = await ringOf(4, pki.good, 0);
  const plainRings = await ringOf(4, undefined, 0);
  try {
    const viaTls = await sums(tlsRings, n);
    const plain = await sums(plainRings, n);
    for (let i = 0; i < 4; i++) assert.ok(Buffer.from(viaTls[i]!.buffer).equals(Buffer.from(plain[i]!.buffer)), `rank ${i}: TLS and plain agree bit for bit`);
    assert.ok(tlsRings.every((r) => r.stats.halvings === 1 && r.stats.bytesReadInPlace > 0 && r.linkStats.refusedTls === 0));
  } finally {
    await Promise.all([...tlsRings, ...plainRings].map((r) => r.close()));
  }
});

/** Dials `url`'s data port over TLS with `tls` (or plain TCP when null) as the right neighbour; resolves with how it ended. */
function dialData(url: string, tls: Partial<TlsCredentials> | null, nodeId: string, expectPeer: string): Promise<string> {
  const overTls: DataSocketOpener = (where) => ({
    sock: tlsConnect({ ...where, ...dialTlsOptions({ ...pki.good, ...tls } as TlsCredentials), ...(tls?.cert ? {} : { cert: undefined, key: undefined }) }),
    ready: 'secureConnect',
  });
  return dialRingData(url, nodeId, SECRET, 1, expectPeer, tls ? overTls : undefined);
}

test('a data-port dial with another CA\'s, an expired or no certificate, or without TLS, is refused before the data handshake', async () => {
  const rings = await ringOf(2, pki.good);
  try {
    const [a, b] = rings as [RingAllreduce, RingAllreduce];
    await sums(rings, 1001); // both streams are open
    const bad = [
      ['another CA', { cert: pki.fromOtherCa.cert, key: pki.fromOtherCa.key }],
      ['expired', { cert: pki.expired.cert, key: pki.expired.key }],
      ['no certificate', {}],
      ['no TLS', null],
    ] as const;
    for (const [what, creds] of bad) {
      const r = await dialData(a.url, creds, 'w1', 'w0');
      assert.not.equal(r, 'open', what);
    }
    await until('four TLS refusals', () => a.linkStats.refusedTls === 4);
    assert.is(a.stats.refusedStreams, 0, 'the data handshake never ran for any of them: nothing was read');
    // With a good certificate the HMAC and the ring's own checks still apply on top.
    const second = await dialData(a.url, { cert: pki.other.cert, key: pki.other.key }, 'w1', 'w0');
    assert.match(second, /already open/);
    await until('the refused stream', () => a.stats.refusedStreams === 1);
    const x = randomFloats(777, 5), y = randomFloats(777, 6);
    const want = x.map((v, i) => v + y[i]!);
    await Promise.all([a.allreduce(x), b.allreduce(y)]);
    assert.ok(Buffer.from(x.buffer).equals(Buffer.from(want.buffer)), 'the ring works on');
  } finally {
    await Promise.all(rings.map((r) => r.close()));
  }
});

test.after(() => pki.remove());
test.run();
