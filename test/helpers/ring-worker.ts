// Child process for the allreduce tests: a worker that joins the scheduler with its ring address
// and follows the cluster view (DenseAllreduce), then runs allreduce commands from the parent.
// Its data is randomFloats(n, seed + 1000 * rank + rep), so the parent can rebuild every input.
import { PSClient } from '../../src/client/ps-client.ts';
import { DenseAllreduce } from '../../src/worker/dense-allreduce.ts';
import { SECRET } from './secret.ts';
import { randomFloats } from './random.ts';
import { serveCommands, toBase64 } from './json-proc.ts';

const nodeId = process.env.NODE_ID!;
const dense = await DenseAllreduce.create({ nodeId, secret: SECRET, timeoutMs: Number(process.env.TIMEOUT_MS ?? 5000), segmentBytes: Number(process.env.SEGMENT_BYTES ?? 0) || undefined,
  halvingMinBytes: process.env.HALVING_MIN_BYTES ? Number(process.env.HALVING_MIN_BYTES) : undefined });
const client = await PSClient.connect({ secret: SECRET, schedulerUrl: process.env.SCHEDULER!, nodeId, address: dense.url }); // beats at the scheduler's pace
dense.attach(client);
process.stdout.write(JSON.stringify({ ready: true }) + '\n');

const input = (n: number, seed: number, rep: number) => randomFloats(n, seed + 1000 * client.rank + rep);

serveCommands(async (m) => {
  switch (m.cmd) {
    case 'wait': {
      const v = await client.waitForView((v) => v.workers.length === m.workers && v.workersEpoch === dense.ring.ringEpoch, 60_000);
      return { rank: client.rank, ringEpoch: v.workersEpoch };
    }
    case 'run': {
      // `concurrent`: every rep's op is started before any is awaited (tags keep them apart).
      const bufs = Array.from({ length: m.reps }, (_, r) => input(m.n, m.seed, r));
      const run = (b: Float32Array) => dense.ring.allreduce(b, m.op, { f16: m.f16 });
      if (m.concurrent) await Promise.all(bufs.map(run));
      else for (const b of bufs) await run(b);
      return { rank: client.rank, results: bufs.map(toBase64) };
    }
    case 'loop': {
      // Allreduce a large buffer until something fails (the parent kills a peer meanwhile).
      // Says `started`, then `firstOp` once one op has completed, then answers with the failure.
      const buf = new Float32Array(m.n);
      let ops = 0;
      const t0 = performance.now();
      process.stdout.write(JSON.stringify({ started: true }) + '\n');
      for (;;) {
        try {
          await dense.ring.allreduce(buf.fill(1), 'sum');
          if (++ops === 1) process.stdout.write(JSON.stringify({ firstOp: true }) + '\n');
        } catch (e) {
          return { ops, error: (e as Error).message, name: (e as Error).name, failedAfterMs: performance.now() - t0 };
        }
      }
    }
    case 'retrying-sum': {
      // The worker step's path: DenseAllreduce.sum retries on the next ring after a failure.
      const buf = input(m.n, m.seed, 0);
      await dense.sum(buf);
      return { rank: client.rank, results: [toBase64(buf)] };
    }
    case 'sums': {
      // `reps` worker-step dense sums in a row (DenseAllreduce.sum: retries, reconcile, refusal).
      const results: string[] = [];
      for (let rep = 0; rep < m.reps; rep++) {
        const buf = input(m.n, m.seed, rep);
        try { await dense.sum(buf); } catch (e) { return { rank: client.rank, error: (e as Error).message, done: rep }; }
        results.push(toBase64(buf));
      }
      return { rank: client.rank, results };
    }
    default: throw new Error(`unknown command ${m.cmd}`);
  }
});
