// The ring's data stream (docs/wire.md, "Ring data stream"), in one process with real sockets:
// a dial to the data port without the cluster secret, or from a node that is not the right
// neighbour, is refused and the ring goes on; a corrupted or mis-tagged segment from the left
// neighbour fails the op with the cause and leaves the buffer as it was; and both schedules (the
// direct exchange at W = 2, the ring at W = 2..8) give every rank the same bits, within the
// float64 reference's tolerance, at odd lengths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { RingAllreduce } from '../src/allreduce/index.ts';
import { Listener } from '../src/transport/index.ts';
import { acceptDataStream, DATA_PROTOCOL, upgradeRequest } from '../src/allreduce/data-handshake.ts';
import { FLAG_F16, HEADER_WORDS, writeHeader, type SegmentHeader } from '../src/allreduce/segment-header.ts';
import { SECRET } from './helpers/secret.ts';
import { randomFloats } from './helpers/random.ts';
import { checkAllreduce, dialData, until } from './helpers/ring-data.ts';

test('a dial to the data port without the secret, or not from the right neighbour, is refused; the ring goes on', async () => {
  const rings = await Promise.all(['a', 'b'].map((id) => RingAllreduce.create({ nodeId: id, secret: SECRET, timeoutMs: 10_000 })));
  try {
    const members = rings.map((r) => ({ nodeId: r.nodeId, address: r.url }));
    for (const r of rings) r.setRing(members, 1);
    const [a, b] = rings as [RingAllreduce, RingAllreduce];
    const x = randomFloats(1001, 1), y = randomFloats(1001, 2);
    await Promise.all([a.allreduce(x), b.allreduce(y)]); // both streams are open now

    const wrong = await dialData(a.url, 'b', new TextEncoder().encode('another-secret-0123456'), 1, 'a');
    assert.match(wrong, /closed without an answer|refused/, `wrong secret: ${wrong}`);
    await until('the refusal to be counted', () => a.stats.refusedStreams === 1);
    const stranger = await dialData(a.url, 'intruder', SECRET, 1, 'a');
    assert.match(stranger, /intruder is not the right neighbour of a in ring epoch 1 \(b is\)/);
    const second = await dialData(a.url, 'b', SECRET, 1, 'a');
    assert.match(second, /already open/);
    const future = await dialData(a.url, 'b', SECRET, 7, 'a');
    assert.match(future, /ring epoch 7 is not installed here yet/);
    assert.is(a.stats.refusedStreams, 4);

    // A plain TCP client that never authenticates gets nothing but the challenge, then is closed
    // by the hello timeout (5 s): while it waits, the ring still works.
    const raw = connect({ host: '127.0.0.1', port: Number(new URL(a.url).port) });
    const got: Buffer[] = [];
    raw.on('data', (d: Buffer) => got.push(d));
    raw.on('error', () => {});
    const rawClosed = new Promise((r) => raw.on('close', r));
    raw.write(upgradeRequest('x'));
    const x2 = randomFloats(777, 3), y2 = randomFloats(777, 4);
    const want = x2.map((v, i) => v + y2[i]!);
    await Promise.all([a.allreduce(x2), b.allreduce(y2)]);
    assert.ok(Buffer.from(x2.buffer).equals(Buffer.from(want.buffer)), 'the ring works beside the unauthenticated socket');
    await rawClosed;
    const bytes = Buffer.concat(got);
    assert.ok(bytes.toString('latin1').startsWith('HTTP/1.1 101'), 'it got the upgrade answer');
    assert.ok(bytes.length < 200, `and only the challenge after it (${bytes.length} bytes)`);
  } finally {
    await Promise.all(rings.map((r) => r.close()));
  }
});

/**
 * Rank 0 of a two-member ring whose other member is this test: it accepts rank 0's data dial
 * with the real secret and writes whatever segments the test makes to it.
 */
async function ringWithFakeLeft() {
  let stream: Socket | null = null;
  const fake = await Listener.listen({
    nodeId: 'fake', secret: SECRET, onRequest: () => {},
    rawUpgrade: {
      protocol: DATA_PROTOCOL,
      onSocket: (socket, head, authenticated) => {
        void acceptDataStream(socket, head, { secret: SECRET, nodeId: 'fake', admit: () => null }).then(() => { authenticated(); stream = socket; }, () => {});
      },
    },
  });
  const ring = await RingAllreduce.create({ nodeId: 'a', secret: SECRET, timeoutMs: 20_000, exchangeMaxBytes: 0, halvingMinBytes: Infinity });
  let epoch = 0;
  return {
    ring,
    /** A new ring epoch; resolves with the data stream rank 0 opened to the fake. */
    async next(): Promise<{ epoch: number; send(h: SegmentHeader, values: Float32Array, corrupt?: (w: Uint32Array) => void): void }> {
      stream = null;
      ring.setRing([{ nodeId: 'a', address: ring.url }, { nodeId: 'fake', address: fake.url }], ++epoch);
      await until('rank 0 to open its data stream', () => stream !== null);
      const s = stream!;
      return {
        epoch,
        send(h, values, corrupt) {
          const w = new Uint32Array(HEADER_WORDS);
          writeHeader(w, 0, h);
          corrupt?.(w);
          s.write(new Uint8Array(w.buffer));
          s.write(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
        },
      };
    },
    async close() { await ring.close(); await fake.close(); },
  };
}

test('a corrupted or mis-tagged segment fails the op with its cause and changes nothing', async () => {
  const t = await ringWithFakeLeft();
  try {
    const n = 1001, half = Math.floor(n / 2), count = n - half;
    const values = new Float32Array(count).fill(1000);
    // At W = 2 rank 0 first receives block 1 (offset `half`) at step 0, op 0.
    const cases: { what: string; header: (epoch: number) => SegmentHeader; corrupt?: (w: Uint32Array) => void; f16?: boolean; cause: RegExp }[] = [
      { what: 'corrupted header', header: (e) => ({ ringEpoch: e, opId: 0, step: 0, flags: 0, segment: 0, offset: half, count }), corrupt: (w) => { w[7]! ^= 4; }, cause: /checksum mismatch/ },
      { what: 'not a segment header', header: (e) => ({ ringEpoch: e, opId: 0, step: 0, flags: 0, segment: 0, offset: half, count }), corrupt: (w) => { w[0] = 0x12345678; }, cause: /bad magic/ },
      { what: 'another ring epoch', header: (e) => ({ ringEpoch: e + 100, opId: 0, step: 0, flags: 0, segment: 0, offset: half, count }), cause: /opened for ring epoch/ },
      { what: 'an op that is over', header: (e) => ({ ringEpoch: e, opId: 0, step: 9, flags: 0, segment: 0, offset: half, count }), cause: /step out of range/ },
      { what: 'the wrong offset', header: (e) => ({ ringEpoch: e, opId: 0, step: 0, flags: 0, segment: 0, offset: 0, count }), cause: /offset 0, expected 500/ },
      { what: 'a segment out of order', header: (e) => ({ ringEpoch: e, opId: 0, step: 0, flags: 0, segment: 3, offset: half, count }), cause: /expected segment 0/ },
      { what: 'an overrun', header: (e) => ({ ringEpoch: e, opId: 0, step: 0, flags: 0, segment: 0, offset: half, count: count + 7 }), cause: /overrun the block ending at 1001/ },
      { what: 'the wrong encoding', header: (e) => ({ ringEpoch: e, opId: 0, step: 0, flags: FLAG_F16, segment: 0, offset: half, count }), cause: /values are f16 but this op uses f32/ },
      { what: 'the wrong schedule', header: (e) => ({ ringEpoch: e, opId: 0, step: 0, flags: 2, segment: 0, offset: 0, count: n }), cause: /for a direct exchange but this op runs the ring/ },
    ];
    for (const c of cases) {
      const link = await t.next();
      const buf = randomFloats(n, 7);
      const before = buf.slice();
      const op = t.ring.allreduce(buf);
      link.send(c.header(link.epoch), values, c.corrupt);
      const err = await op.then(() => null, (e: Error) => e);
      assert.ok(err, `${c.what}: the op must fail`);
      assert.match(err!.message, c.cause, `${c.what}: ${err!.message}`);
      assert.match(err!.message, /from left neighbour fake/, `${c.what}: the message names the sender`);
      assert.ok(Buffer.from(buf.buffer).equals(Buffer.from(before.buffer)), `${c.what}: the buffer is unchanged`);
    }
    // A well-formed segment on a fresh ring is applied: the refusals above were the checks, not the plumbing.
    const link = await t.next();
    const buf = new Float32Array(n).fill(1);
    void t.ring.allreduce(buf).catch(() => {}); // it waits for step 1 from the fake, which never comes
    link.send({ ringEpoch: link.epoch, opId: 0, step: 0, flags: 0, segment: 0, offset: half, count }, values);
    await until('the segment to be added', () => buf[half] === 1001 && buf[n - 1] === 1001);
    assert.is(buf[half - 1], 1, 'outside the segment nothing changed');
  } finally {
    await t.close();
  }
});

test('segments for an op not started here wait in a full receive buffer; the op then completes', async () => {
  // Rank a runs ahead: its op 1 (1 MiB) arrives at b while b is still between ops, so b's 64 KiB
  // receive buffer fills and reading pauses; once b starts op 1 it drains and goes on. (Before the
  // fix, Node's next read after the pause went into an empty buffer and the stream closed.)
  const rs = await Promise.all(['a', 'b'].map((id) => RingAllreduce.create({ nodeId: id, secret: SECRET, timeoutMs: 30_000, receiveBufferBytes: 64 << 10, exchangeMaxBytes: 1 << 30 })));
  try {
    const members = rs.map((r) => ({ nodeId: r.nodeId, address: r.url }));
    for (const r of rs) r.setRing(members, 1);
    const [a, b] = rs as [RingAllreduce, RingAllreduce];
    const n = 1 << 18;
    const ahead = (async () => { await a.allreduce(new Float32Array(8).fill(1)); return a.allreduce(new Float32Array(n).fill(1)); })();
    ahead.catch(() => {}); // awaited below; if b fails first, this one fails at close
    await b.allreduce(new Float32Array(8).fill(2));
    await new Promise((r) => setTimeout(r, 200)); // a short window: a's op 1 reaches b's socket meanwhile
    const late = await b.allreduce(new Float32Array(n).fill(2));
    const early = await ahead;
    assert.ok(late.every((v) => v === 3) && early.every((v) => v === 3), 'both ranks have the sum');
  } finally {
    await Promise.all(rs.map((r) => r.close()));
  }
});

/** In-process rings of `w` members; exchangeMaxBytes as given, halving/doubling off (allreduce-halving.test.ts tests it). */
async function rings(w: number, exchangeMaxBytes: number): Promise<RingAllreduce[]> {
  const rs = await Promise.all(Array.from({ length: w }, (_, i) => RingAllreduce.create({ nodeId: `r${i}`, secret: SECRET, timeoutMs: 30_000, segmentBytes: 4 << 10, exchangeMaxBytes, halvingMinBytes: Infinity })));
  const members = rs.map((r) => ({ nodeId: r.nodeId, address: r.url }));
  for (const r of rs) r.setRing(members, 1);
  return rs;
}

async function checkSchedule(w: number, exchangeMaxBytes: number, expectExchange: boolean): Promise<void> {
  const rs = await rings(w, exchangeMaxBytes);
  try {
    for (const [n, op, f16] of [[1, 'sum', false], [3, 'sum', false], [1001, 'sum', false], [30_011, 'mean', false], [4099, 'sum', true], [999, 'mean', true]] as const) {
      const inputs = rs.map((_, r) => randomFloats(n, 100 * n + r + (f16 ? 7 : 0)));
      const bufs = inputs.map((x) => x.slice());
      await Promise.all(rs.map((r, i) => r.allreduce(bufs[i]!, op, { f16 })));
      checkAllreduce(`W=${w} ${expectExchange ? 'exchange' : 'ring'} n=${n} ${op}${f16 ? ' f16' : ''}`, inputs, bufs, op, f16);
    }
    assert.is(rs[0]!.stats.exchanges > 0, expectExchange, `W=${w}: ${rs[0]!.stats.exchanges} exchanges`);
  } finally {
    await Promise.all(rs.map((r) => r.close()));
  }
}

test('W = 2 direct exchange: every rank the same bits, within the reference (f32 and f16), odd lengths', async () => {
  await checkSchedule(2, 1 << 30, true);
});

test('concurrent direct exchanges (one shared staging buffer, the others their own) do not mix', async () => {
  const rs = await rings(2, 1 << 30);
  try {
    const inputs = rs.map((_, r) => Array.from({ length: 5 }, (_, k) => randomFloats(1001 + 100 * k, 10 * r + k)));
    const bufs = inputs.map((xs) => xs.map((x) => x.slice()));
    await Promise.all(rs.flatMap((r, i) => bufs[i]!.map((b) => r.allreduce(b))));
    for (let k = 0; k < 5; k++) {
      const want = inputs[0]![k]!.map((v, j) => v + inputs[1]![k]![j]!);
      for (const b of bufs) assert.ok(Buffer.from(b[k]!.buffer).equals(Buffer.from(want.buffer)), `op ${k}: x0 + x1 on every rank`);
    }
    assert.is(rs[0]!.stats.exchanges, 5);
  } finally {
    await Promise.all(rs.map((r) => r.close()));
  }
});

for (const w of [2, 3, 4, 5, 8]) {
  test(`W = ${w} ring on the data stream: every rank the same bits, within the reference (f32 and f16), odd lengths`, async () => {
    await checkSchedule(w, 0, false);
  });
}

test.run();
