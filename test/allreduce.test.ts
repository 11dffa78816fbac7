// Ring allreduce across separate worker processes on loopback, with the ring taken from the
// scheduler's cluster view: sums and means equal the float64 reference, every rank ends with the
// same bits, odd and tiny lengths work, ops stay apart back to back and concurrently, fp16 stays
// within its documented bound, and a peer killed mid-operation gives the others an error (not a
// hang) after which the survivors' new ring works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { f16ErrorBound } from '../src/allreduce/index.ts';
import { SECRET } from './helpers/secret.ts';
import { randomFloats } from './helpers/random.ts';
import { JsonProc, fromBase64 } from './helpers/json-proc.ts';

const WORKER = fileURLToPath(new URL('./helpers/ring-worker.ts', import.meta.url));

interface Ring { scheduler: Scheduler; procs: JsonProc[]; close(): Promise<void> }

async function startRing(w: number, env: Record<string, string> = {}): Promise<Ring> {
  // Default heartbeats (1 s, 5 missed): peers die here by being killed (closed links, seen at once);
  // at 200 ms a worker process left without CPU for a second was dropped and its ring broke.
  const scheduler = await Scheduler.start({ secret: SECRET });
  const procs = Array.from({ length: w }, (_, i) => JsonProc.start(WORKER, { SCHEDULER: scheduler.url, NODE_ID: `worker-${i}`, SEGMENT_BYTES: String(4 << 10), ...env }));
  await Promise.all(procs.map((p) => p.next()));
  const ranks = await Promise.all(procs.map((p) => p.ask({ cmd: 'wait', workers: w })));
  assert.equal(ranks.map((r) => r.rank).sort(), Array.from({ length: w }, (_, i) => i));
  return { scheduler, procs, async close() { await Promise.all(procs.map((p) => p.stop())); await scheduler.stop(); } };
}

/** Float64 sum over ranks of each rank's input for rep `rep`. */
function reference(w: number, n: number, seed: number, rep: number): { sum: Float64Array; sumAbs: Float64Array } {
  const sum = new Float64Array(n), sumAbs = new Float64Array(n);
  for (let r = 0; r < w; r++) {
    const x = randomFloats(n, seed + 1000 * r + rep);
    for (let i = 0; i < n; i++) { sum[i] += x[i]!; sumAbs[i] += Math.abs(x[i]!); }
  }
  return { sum, sumAbs };
}

async function runAll(ring: Ring, cmd: object): Promise<Float32Array[][]> {
  const out = await Promise.all(ring.procs.map((p) => p.ask(cmd)));
  for (const o of out) if (o.error) throw new Error(o.error);
  return out.map((o) => (o.results as string[]).map(fromBase64));
}

function check(ring: Ring, results: Float32Array[][], n: number, seed: number, op: 'sum' | 'mean', f16 = false): void {
  const w = ring.procs.length;
  results[0]!.forEach((first, rep) => {
    assert.is(first.length, n);
    for (const other of results) assert.ok(Buffer.from(other[rep]!.buffer).equals(Buffer.from(first.buffer)), `rank results differ (rep ${rep}, n ${n})`);
    const { sum, sumAbs } = reference(w, n, seed, rep);
    for (let i = 0; i < n; i++) {
      const want = op === 'mean' ? sum[i]! / w : sum[i]!;
      // fp32: each of W-1 additions and the division round once (2^-24 relative to sum |x|).
      const tol = f16 ? f16ErrorBound(w, sumAbs[i]!, op) : (w + 1) * 2 ** -24 * sumAbs[i]! + 1e-30;
      if (!(Math.abs(first[i]! - want) <= tol)) assert.unreachable(`element ${i} of ${n} (rep ${rep}, W ${w}, ${op}${f16 ? ', f16' : ''}): ${first[i]} vs ${want}, tolerance ${tol}`);
    }
  });
}

for (const w of [2, 3, 5]) {
  test(`W=${w}: sum and mean of random data equal the float64 reference on every rank, any length`, async () => {
    const ring = await startRing(w);
    try {
      // Tiny (fewer elements than workers), odd, and several 4 KiB segments per block.
      for (const n of [1, 2, w - 1 || 1, w + 1, 7, 1001, 100_003]) {
        check(ring, await runAll(ring, { cmd: 'run', n, seed: n, op: 'sum', reps: 1 }), n, n, 'sum');
      }
      check(ring, await runAll(ring, { cmd: 'run', n: 30_011, seed: 5, op: 'mean', reps: 1 }), 30_011, 5, 'mean');
    } finally { await ring.close(); }
  });
}

test('back-to-back and concurrent operations do not mix their chunks', async () => {
  const ring = await startRing(3);
  try {
    check(ring, await runAll(ring, { cmd: 'run', n: 777, seed: 11, op: 'sum', reps: 60 }), 777, 11, 'sum');
    check(ring, await runAll(ring, { cmd: 'run', n: 20_000, seed: 12, op: 'sum', reps: 8, concurrent: true }), 20_000, 12, 'sum');
  } finally { await ring.close(); }
});

test('fp16 on the wire stays within the documented bound and every rank gets the same bits', async () => {
  const ring = await startRing(4);
  try {
    check(ring, await runAll(ring, { cmd: 'run', n: 50_001, seed: 21, op: 'sum', f16: true, reps: 2 }), 50_001, 21, 'sum', true);
    check(ring, await runAll(ring, { cmd: 'run', n: 999, seed: 22, op: 'mean', f16: true, reps: 1 }), 999, 22, 'mean', true);
  } finally { await ring.close(); }
});

test('a peer killed mid-operation fails the others within a bounded time; the new ring works', async () => {
  const ring = await startRing(3, { TIMEOUT_MS: '4000' });
  try {
    const running = ring.procs.map((p) => p.ask({ cmd: 'loop', n: 1 << 20 }));
    assert.ok((await running[0]!).started && (await running[1]!).started && (await running[2]!).started);
    // Kill once every rank has completed an op (a fixed 1 s pause could pass before the first 4 MiB
    // op finished on a busy machine): the kill then lands while the next ops are running.
    const first = await Promise.all(ring.procs.map((p) => p.next(60_000)));
    assert.ok(first.every((f) => f.firstOp), JSON.stringify(first));
    const t0 = performance.now();
    ring.procs[2]!.kill();
    const [a, b] = await Promise.all([ring.procs[0]!.next(60_000), ring.procs[1]!.next(60_000)]);
    const waited = performance.now() - t0;
    for (const r of [a, b]) {
      assert.ok(r.error, 'the op must fail');
      assert.match(r.name, /Allreduce(Aborted|Timeout)Error/);
      assert.ok(r.ops >= 1, `some ops completed before the kill (${r.ops})`);
    }
    assert.ok(waited < 10_000, `errors arrived after ${waited.toFixed(0)} ms`);
    // The scheduler drops the dead worker; the survivors get a 2-worker ring and go on.
    const survivors: Ring = { ...ring, procs: ring.procs.slice(0, 2) };
    await Promise.all(survivors.procs.map((p) => p.ask({ cmd: 'wait', workers: 2 })));
    check(survivors, await runAll(survivors, { cmd: 'run', n: 5003, seed: 31, op: 'sum', reps: 3 }), 5003, 31, 'sum');
  } finally { await ring.close(); }
});

test('a worker joining a running hybrid job is refused with a clear error; the others go on', async () => {
  // Its dense parameters would be the initial ones while its peers' are trained: it must not
  // take part in their sums (the worker step stops on the error, as here by exiting).
  const ring = await startRing(2, { TIMEOUT_MS: '3000' });
  let joiner: JsonProc | undefined;
  try {
    check(ring, await runAll(ring, { cmd: 'sums', n: 1001, seed: 41, reps: 3 }), 1001, 41, 'sum');
    joiner = JsonProc.start(WORKER, { SCHEDULER: ring.scheduler.url, NODE_ID: 'worker-late', SEGMENT_BYTES: String(4 << 10), TIMEOUT_MS: '3000' });
    await joiner.next();
    await Promise.all([...ring.procs, joiner].map((p) => p.ask({ cmd: 'wait', workers: 3 })));
    const going = ring.procs.map((p) => p.ask({ cmd: 'sums', n: 1001, seed: 42, reps: 2 }));
    const refused = await joiner.ask({ cmd: 'sums', n: 1001, seed: 42, reps: 1 });
    assert.is(refused.done, 0, 'the joiner completes no sum');
    assert.match(refused.error, /joined a running hybrid job: its peers have finished 3 dense allreduce/);
    assert.match(refused.error, /--resume/);
    joiner.kill();
    const out = await Promise.all(going);
    for (const o of out) assert.not.ok(o.error, o.error);
    // The two workers' sums equal their own 2-worker reference: nothing of the joiner's got in.
    check(ring, out.map((o) => (o.results as string[]).map(fromBase64)), 1001, 42, 'sum');
  } finally {
    joiner?.kill();
    await ring.close();
  }
});

test.run();
