// Recursive halving/doubling (src/allreduce/halving-op.ts) on real data streams: W = 2, 4, 8 in
// one process give every rank the same bits within the float64 reference's tolerance at odd
// lengths (f32 and f16, sum and mean); a segment on a non-neighbour's stream that is corrupted,
// mis-tagged (another step's partner, another schedule) is refused with its cause and changes
// nothing, while a well-formed one is applied; a stranger cannot open a stream; copied values read
// straight into the caller's buffer (every schedule) land where they belong; and a rank killed
// mid-operation (separate processes) fails the others within a bounded time, after which the
// survivors' next ring works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { RingAllreduce } from '../src/allreduce/index.ts';
import { Listener } from '../src/transport/index.ts';
import { acceptDataStream, DATA_PROTOCOL } from '../src/allreduce/data-handshake.ts';
import { FLAG_HALVING, HEADER_WORDS, writeHeader, type SegmentHeader } from '../src/allreduce/segment-header.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { SECRET } from './helpers/secret.ts';
import { randomFloats } from './helpers/random.ts';
import { JsonProc, fromBase64 } from './helpers/json-proc.ts';
import { checkAllreduce, dialData, until } from './helpers/ring-data.ts';

const ALWAYS = Number.MAX_SAFE_INTEGER;

for (const w of [2, 4, 8]) {
  test(`W = ${w} halving/doubling: every rank the same bits, within the reference (f32 and f16), odd lengths`, async () => {
    const rs = await Promise.all(Array.from({ length: w }, (_, i) => RingAllreduce.create({
      nodeId: `h${i}`, secret: SECRET, timeoutMs: 30_000, segmentBytes: 4 << 10, exchangeMaxBytes: 0, halvingMinBytes: 0,
    })));
    try {
      const members = rs.map((r) => ({ nodeId: r.nodeId, address: r.url }));
      for (const r of rs) r.setRing(members, 1);
      // Fewer elements than ranks (empty blocks), odd, and several 4 KiB segments per step.
      for (const [n, op, f16] of [[1, 'sum', false], [w - 1 || 1, 'sum', false], [1001, 'sum', false], [30_011, 'mean', false], [70_001, 'sum', false], [4099, 'sum', true], [999, 'mean', true]] as const) {
        const inputs = rs.map((_, r) => randomFloats(n, 31 * n + r + (f16 ? 7 : 0)));
        const bufs = inputs.map((x) => x.slice());
        await Promise.all(rs.map((r, i) => r.allreduce(bufs[i]!, op, { f16 })));
        checkAllreduce(`W=${w} halving n=${n} ${op}${f16 ? ' f16' : ''}`, inputs, bufs, op, f16);
      }
      // Back to back and concurrent: op ids keep them apart on every stream.
      const conc = rs.map((_, r) => Array.from({ length: 4 }, (_, k) => randomFloats(5003 + k, 1000 * r + k)));
      const cbufs = conc.map((xs) => xs.map((x) => x.slice()));
      await Promise.all(rs.flatMap((r, i) => cbufs[i]!.map((b) => r.allreduce(b))));
      for (let k = 0; k < 4; k++) for (const b of cbufs) assert.ok(Buffer.from(b[k]!.buffer).equals(Buffer.from(cbufs[0]![k]!.buffer)), `concurrent op ${k}: ranks differ`);
      assert.is(rs[0]!.stats.halvings, 7 + 4, `every op ran by halving/doubling (${rs[0]!.stats.halvings})`);
    } finally {
      await Promise.all(rs.map((r) => r.close()));
    }
  });
}

test('copied segments are read straight into place (ring, exchange, halving/doubling): the same bits as the float64 reference, the rest untouched', async () => {
  // 256 KiB segments, so all-gather and exchange values take the in-place path (16 KiB and up).
  for (const [w, kind] of [[2, 'exchange'], [2, 'ring'], [3, 'ring'], [4, 'halving'], [4, 'ring']] as const) {
    const rs = await Promise.all(Array.from({ length: w }, (_, i) => RingAllreduce.create({
      nodeId: `p${i}`, secret: SECRET, timeoutMs: 30_000, segmentBytes: 256 << 10,
      exchangeMaxBytes: kind === 'exchange' ? ALWAYS : 0, halvingMinBytes: kind === 'halving' ? 0 : Infinity,
    })));
    try {
      const members = rs.map((r) => ({ nodeId: r.nodeId, address: r.url }));
      for (const r of rs) r.setRing(members, 1);
      for (const n of [300_007, 65_537]) {
        // Each rank's buffer is a view into a larger array: nothing outside it may change.
        const inputs = rs.map((_, r) => randomFloats(n, 17 * n + r));
        const hosts = inputs.map((x) => { const h = new Float32Array(n + 10).fill(-7); h.set(x, 5); return h; });
        await Promise.all(rs.map((r, i) => r.allreduce(hosts[i]!.subarray(5, 5 + n))));
        const what = `W=${w} ${kind} n=${n}`;
        for (const h of hosts) {
          assert.ok(Buffer.from(h.buffer).equals(Buffer.from(hosts[0]!.buffer)), `${what}: ranks differ`);
          for (const i of [0, 1, 2, 3, 4, n + 5, n + 9]) assert.is(h[i], -7, `${what}: element ${i} outside the buffer changed`);
        }
        for (let i = 0; i < n; i++) {
          let sum = 0, sumAbs = 0;
          for (const x of inputs) { sum += x[i]!; sumAbs += Math.abs(x[i]!); }
          if (!(Math.abs(hosts[0]![i + 5]! - sum) <= (w + 1) * 2 ** -24 * sumAbs + 1e-30)) assert.unreachable(`${what}: element ${i}: ${hosts[0]![i + 5]} vs ${sum}`);
        }
      }
      assert.ok(rs[0]!.stats.bytesReadInPlace > 0, `W=${w} ${kind}: values were read into place (${rs[0]!.stats.bytesReadInPlace} of ${rs[0]!.stats.bytesReceived} bytes)`);
    } finally {
      await Promise.all(rs.map((r) => r.close()));
    }
  }
});

test('a corrupted or mis-tagged segment on a non-neighbour stream is refused and changes nothing; a stranger gets no stream', async () => {
  // Rank 0 ('a') of a 4-member ring whose other members f1..f3 are fakes in this test: a dials the
  // data port of each it receives from (left f3, partners f2 and f1) and the fakes write segments.
  const streams = new Map<string, Socket>();
  const fakes = await Promise.all(['f1', 'f2', 'f3'].map((id) => Listener.listen({
    nodeId: id, secret: SECRET, onRequest: () => {},
    rawUpgrade: {
      protocol: DATA_PROTOCOL,
      onSocket: (socket, head, authenticated) => {
        void acceptDataStream(socket, head, { secret: SECRET, nodeId: id, admit: () => null }).then(() => { authenticated(); streams.set(id, socket); }, () => {});
      },
    },
  })));
  const a = await RingAllreduce.create({ nodeId: 'a', secret: SECRET, timeoutMs: 20_000, halvingMinBytes: 0 });
  let epoch = 0;
  const next = async () => {
    streams.clear();
    a.setRing([{ nodeId: 'a', address: a.url }, ...fakes.map((f, i) => ({ nodeId: `f${i + 1}`, address: f.url }))], ++epoch);
    await until('a to open its three data streams', () => streams.size === 3);
    return epoch;
  };
  const send = (from: string, h: SegmentHeader, values: Float32Array, corrupt?: (w: Uint32Array) => void) => {
    const w = new Uint32Array(HEADER_WORDS);
    writeHeader(w, 0, h);
    corrupt?.(w);
    streams.get(from)!.write(new Uint8Array(w.buffer));
    streams.get(from)!.write(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  };
  try {
    // n = 1001, W = 4: rank 0 receives [0, 500) from f2 at step 0 (f2 is no neighbour of a), then
    // [0, 250) from f1 at step 1, then blocks 1 and 2-3 back at steps 2 and 3.
    const n = 1001;
    const seg = (e: number, step: number, offset: number, count: number, flags = FLAG_HALVING): SegmentHeader => ({ ringEpoch: e, opId: 0, step, flags, segment: 0, offset, count });
    const cases: { what: string; from: string; header: (e: number) => SegmentHeader; corrupt?: (w: Uint32Array) => void; cause: RegExp; role: string }[] = [
      { what: 'corrupted header', from: 'f2', header: (e) => seg(e, 0, 0, 500), corrupt: (w) => { w[6]! ^= 1; }, cause: /checksum mismatch/, role: 'halving partner f2' },
      { what: "another step's partner", from: 'f2', header: (e) => seg(e, 1, 0, 250), cause: /step 1 of this rank comes from f1 \(rank 1\), not from f2/, role: 'halving partner f2' },
      { what: 'step 0 on the wrong stream', from: 'f3', header: (e) => seg(e, 0, 0, 500), cause: /step 0 of this rank comes from f2 \(rank 2\), not from f3/, role: 'left neighbour f3' },
      { what: 'another schedule', from: 'f2', header: (e) => seg(e, 0, 0, 500, 0), cause: /for the ring schedule but this op runs recursive halving\/doubling/, role: 'halving partner f2' },
      { what: 'the wrong offset', from: 'f2', header: (e) => seg(e, 0, 250, 250), cause: /offset 250, expected 0/, role: 'halving partner f2' },
      { what: 'an overrun', from: 'f2', header: (e) => seg(e, 0, 0, 501), cause: /overrun the range ending at 500/, role: 'halving partner f2' },
    ];
    for (const c of cases) {
      const e = await next();
      const buf = randomFloats(n, 5);
      const before = buf.slice();
      const op = a.allreduce(buf);
      const h = c.header(e);
      send(c.from, h, new Float32Array(h.count).fill(1000), c.corrupt);
      const err = await op.then(() => null, (x: Error) => x);
      assert.ok(err, `${c.what}: the op must fail`);
      assert.match(err!.message, c.cause, `${c.what}: ${err!.message}`);
      assert.ok(err!.message.includes(`from ${c.role} refused`), `${c.what}: names the stream: ${err!.message}`);
      assert.ok(Buffer.from(buf.buffer).equals(Buffer.from(before.buffer)), `${c.what}: the buffer is unchanged`);
    }
    // Well-formed segments on a fresh ring are applied: the refusals above were the checks.
    const e = await next();
    const buf = new Float32Array(n).fill(1);
    void a.allreduce(buf).catch(() => {}); // it waits for the all-gather, which never comes
    send('f2', seg(e, 0, 0, 500), new Float32Array(500).fill(10));
    await until('step 0 to be added', () => buf[0] === 11 && buf[499] === 11);
    send('f1', seg(e, 1, 0, 250), new Float32Array(250).fill(100));
    await until('step 1 to be added', () => buf[0] === 111 && buf[249] === 111);
    assert.is(buf[250], 11, 'step 1 covers block 0 only');
    assert.is(buf[500], 1, 'what rank 0 sent at step 0 is not written');

    const stranger = await dialData(a.url, 'intruder', SECRET, e, 'a');
    assert.match(stranger, /intruder is not the right neighbour of a in ring epoch \d+ \(f1 is\) nor a halving\/doubling partner \(f2\)/);
    assert.match(await dialData(a.url, 'f2', SECRET, e, 'a'), /open/, 'the partner may open its stream');
    assert.match(await dialData(a.url, 'f2', SECRET, e, 'a'), /already open/, 'once');
  } finally {
    await a.close();
    await Promise.all(fakes.map((f) => f.close()));
  }
});

test('W = 4 halving/doubling: a rank killed mid-operation fails the others within a bounded time; the new ring works', async () => {
  const worker = fileURLToPath(new URL('./helpers/ring-worker.ts', import.meta.url));
  const scheduler = await Scheduler.start({ secret: SECRET });
  const procs = Array.from({ length: 4 }, (_, i) => JsonProc.start(worker, { SCHEDULER: scheduler.url, NODE_ID: `worker-${i}`, SEGMENT_BYTES: String(64 << 10), TIMEOUT_MS: '4000', HALVING_MIN_BYTES: '0' }));
  try {
    await Promise.all(procs.map((p) => p.next()));
    const ranks = (await Promise.all(procs.map((p) => p.ask({ cmd: 'wait', workers: 4 })))).map((r) => r.rank as number);
    const running = procs.map((p) => p.ask({ cmd: 'loop', n: 1 << 20 }));
    for (const r of running) assert.ok((await r).started);
    const first = await Promise.all(procs.map((p) => p.next(60_000)));
    assert.ok(first.every((f) => f.firstOp), JSON.stringify(first));
    // Kill the rank two places from rank 0: its partner at step 0, not its neighbour.
    const victim = ranks.indexOf(2);
    const t0 = performance.now();
    procs[victim]!.kill();
    const others = procs.filter((_, i) => i !== victim);
    const outs = await Promise.all(others.map((p) => p.next(60_000)));
    const waited = performance.now() - t0;
    for (const r of outs) {
      assert.ok(r.error, 'the op must fail');
      assert.match(r.name, /Allreduce(Aborted|Timeout)Error/);
      assert.ok(r.ops >= 1, `some ops completed before the kill (${r.ops})`);
    }
    assert.ok(waited < 10_000, `errors arrived after ${waited.toFixed(0)} ms`);
    // Three survivors: not a power of two, so the ring; the sums are right and identical.
    await Promise.all(others.map((p) => p.ask({ cmd: 'wait', workers: 3 })));
    const res = await Promise.all(others.map((p) => p.ask({ cmd: 'run', n: 5003, seed: 3, op: 'sum', reps: 2 })));
    for (const r of res) assert.ok(!r.error, r.error);
    for (const r of res) assert.equal(r.results, res[0]!.results, 'the survivors agree');
    for (let rep = 0; rep < 2; rep++) {
      const got = fromBase64(res[0]!.results[rep]);
      const inputs = res.map((r) => randomFloats(5003, 3 + 1000 * (r.rank as number) + rep));
      for (let i = 0; i < 5003; i++) {
        const sum = inputs.reduce((acc, x) => acc + x[i]!, 0), sumAbs = inputs.reduce((acc, x) => acc + Math.abs(x[i]!), 0);
        if (!(Math.abs(got[i]! - sum) <= 4 * 2 ** -24 * sumAbs + 1e-30)) assert.unreachable(`rep ${rep} element ${i}: ${got[i]} vs ${sum}`);
      }
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await scheduler.stop();
  }
});

test.run();
