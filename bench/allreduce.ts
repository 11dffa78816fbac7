// Ring allreduce on loopback: W = 2 and 4 worker processes, buffers of 1-64 MiB, median of
// repeated runs, bus bandwidth = 2(W-1)/W x bytes / time. Baseline in the same run: one `ws`
// stream between two processes moving the same bytes in frames of the ring's segment size, client
// to server as the ring's links are (the same all-zero mask), timed until the receiver has it all.
//
// `node --import tsx bench/allreduce.ts [--json] [--quick]`. The same file is the worker and the
// baseline processes (first argument `worker`, `sink` or `source`), driven by JSON lines on stdin.
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, WebSocket } from 'ws';
import { RingAllreduce, DEFAULT_SEGMENT_BYTES } from '../src/allreduce/index.ts';
import { printTable } from './table.ts';
import { JsonProc, serveCommands } from '../test/helpers/json-proc.ts';

const MiB = 1 << 20;
const here = fileURLToPath(import.meta.url);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

/** A child process of this file in role `role` (worker, sink, source), driven by JSON lines. */
const startRole = (role: string, env: Record<string, string>) =>
  JsonProc.start(here, env, { args: [role], nodeArgs: process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) });
const LONG = 600_000;
const GLOO = fileURLToPath(new URL('./gloo_allreduce.py', import.meta.url));

/** torch's version when python3 can import torch with Gloo, else null. */
function glooVersion(): string | null {
  const r = spawnSync('python3', ['-c', 'import torch, torch.distributed as d; assert d.is_gloo_available(); print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

// ---------------------------------------------------------------------------------------------
// Child roles

async function workerMain(): Promise<void> {
  const secret = new TextEncoder().encode(process.env.HYBRIDPS_SECRET!);
  const ring = await RingAllreduce.create({ nodeId: process.env.NODE_ID!, secret, segmentBytes: Number(process.env.SEGMENT_BYTES), timeoutMs: 60_000 });
  process.stdout.write(JSON.stringify({ url: ring.url }) + '\n');
  serveCommands(async (m) => {
    if (m.cmd === 'ring') { ring.setRing(m.members, m.epoch); return { ok: true }; }
    if (m.cmd === 'run') {
      const buf = new Float32Array(m.bytes / 4);
      const seconds: number[] = [];
      buf.fill(1);
      await ring.allreduce(buf); // warm-up, and a barrier: nobody starts timing before all are here
      for (let i = 0; i < m.reps; i++) {
        buf.fill(1); // sums of sums would overflow to Infinity after a few dozen reps
        const t = performance.now();
        await ring.allreduce(buf, 'sum', { f16: m.f16 });
        seconds.push((performance.now() - t) / 1000);
      }
      if (buf[0] !== m.workers) throw new Error(`wrong sum ${buf[0]}, expected ${m.workers}`);
      return { seconds, cpu: process.cpuUsage() };
    }
    throw new Error(`unknown command ${m.cmd}`);
  });
}

async function sinkMain(): Promise<void> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * MiB });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => {
    let want = 0, got = 0;
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) { want = Number(data.toString()); got = 0; return; } // the next transfer's size
      got += data.length;
      if (got === want) ws.send('done');
    });
  });
  process.stdout.write(JSON.stringify({ url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}` }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

async function sourceMain(): Promise<void> {
  // The same zero mask as hybridps's own links (src/transport/endpoint.ts): a like-for-like baseline.
  const ws = new WebSocket(process.env.SINK_URL!, { perMessageDeflate: false, maxPayload: 64 * MiB, generateMask: (m) => { m.fill(0); } });
  await new Promise((r) => ws.once('open', r));
  const frame = Number(process.env.SEGMENT_BYTES);
  const payload = randomBytes(frame);
  const transfer = (bytes: number) => new Promise<number>((resolve) => {
    ws.send(String(bytes));
    const t = performance.now();
    ws.once('message', () => resolve((performance.now() - t) / 1000));
    // Same backpressure as the ring's links: keep the socket's queue under a high-water mark.
    let sent = 0;
    // Every frame's write callback re-checks the queue, so sending resumes once it drains.
    const pump = () => {
      while (sent < bytes && ws.bufferedAmount < 32 * MiB) {
        const n = Math.min(frame, bytes - sent);
        sent += n;
        ws.send(n === frame ? payload : payload.subarray(0, n), { binary: true }, () => { if (sent < bytes) pump(); });
      }
    };
    pump();
  });
  serveCommands(async (m) => {
    await transfer(m.bytes); // warm-up
    const seconds: number[] = [];
    for (let i = 0; i < m.reps; i++) seconds.push(await transfer(m.bytes));
    return { seconds };
  });
}

// ---------------------------------------------------------------------------------------------
// Driver

export async function runAllreduceBench(args: { json: boolean; quick?: boolean }): Promise<object> {
  const log = (s: string) => (args.json ? process.stderr : process.stdout).write(s + '\n');
  const segmentBytes = Number(process.env.SEGMENT_BYTES ?? DEFAULT_SEGMENT_BYTES);
  // ALLREDUCE_SIZES=16,64 (MiB) and ALLREDUCE_WORKERS=2 narrow a run (for profiling one case).
  const sizes = process.env.ALLREDUCE_SIZES ? process.env.ALLREDUCE_SIZES.split(',').map((m) => Number(m) * MiB)
    : args.quick ? [1 * MiB, 4 * MiB] : [1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB];
  const repsFor = (bytes: number) => (args.quick ? 5 : bytes >= 64 * MiB ? 5 : bytes >= 16 * MiB ? 9 : 15);
  const workerCounts = process.env.ALLREDUCE_WORKERS ? process.env.ALLREDUCE_WORKERS.split(',').map(Number) : [2, 4];
  const env = { HYBRIDPS_SECRET: randomBytes(16).toString('hex'), SEGMENT_BYTES: String(segmentBytes), HYBRIDPS_LOG: 'warn' };

  // Baseline: one ws stream, two processes.
  const baseline = new Map<number, number>();
  {
    const sink = startRole('sink', env);
    const { url } = await sink.next(LONG);
    const source = startRole('source', { ...env, SINK_URL: url });
    try {
      for (const bytes of sizes) {
        const { seconds } = await source.call({ bytes, reps: repsFor(bytes) }, LONG);
        baseline.set(bytes, median(seconds));
        log(`[bench allreduce] baseline ${bytes / MiB} MiB: ${(bytes / median(seconds) / 1e9).toFixed(3)} GB/s`);
      }
    } finally { await Promise.all([source.stop(), sink.stop()]); }
  }

  const results: {
    workers: number; bytes: number; seconds: number; busGBps: number; baselineGBps: number; ratioToBaseline: number; cpuPerWorker: number;
    glooSeconds?: number; glooBusGBps?: number; vsGloo?: number;
  }[] = [];
  for (const workers of workerCounts) {
    const procs = Array.from({ length: workers }, (_, i) => startRole('worker', { ...env, NODE_ID: `w${i}` }));
    try {
      const urls = await Promise.all(procs.map((p) => p.next(LONG)));
      const members = urls.map((u, i) => ({ nodeId: `w${i}`, address: u.url as string }));
      await Promise.all(procs.map((p) => p.call({ cmd: 'ring', members, epoch: 1 }, LONG)));
      for (const bytes of sizes) {
        const reps = repsFor(bytes);
        const out = await Promise.all(procs.map((p) => p.call({ cmd: 'run', bytes, reps, workers }, LONG)));
        // One rep ends when the slowest worker has its result.
        const perRep = Array.from({ length: reps }, (_, i) => Math.max(...out.map((o) => o.seconds[i] as number)));
        const seconds = median(perRep);
        const busGBps = (2 * (workers - 1) / workers) * bytes / seconds / 1e9;
        const baseGBps = bytes / baseline.get(bytes)! / 1e9;
        const cpu = out.reduce((a, o) => a + (o.cpu.user + o.cpu.system) / 1e6, 0) / workers;
        results.push({ workers, bytes, seconds: +seconds.toFixed(5), busGBps: +busGBps.toFixed(3), baselineGBps: +baseGBps.toFixed(3), ratioToBaseline: +(busGBps / baseGBps).toFixed(3), cpuPerWorker: +cpu.toFixed(2) });
        log(`[bench allreduce] W=${workers} ${bytes / MiB} MiB: ${busGBps.toFixed(3)} GB/s bus`);
      }
    } finally { await Promise.all(procs.map((p) => p.stop())); }
  }

  // Gloo (PyTorch's CPU collectives) on the same machine, same sizes and repetitions, when
  // torch is installed (`pip install torch`): the comparison the issue asks for.
  const gloo = glooVersion();
  if (gloo) {
    for (const workers of workerCounts) {
      const reps = Object.fromEntries(sizes.map((b) => [String(b), repsFor(b)]));
      const r = spawnSync('python3', [GLOO, String(workers), JSON.stringify(reps), ...sizes.map(String)], { encoding: 'utf8', timeout: 900_000 });
      if (r.status !== 0) { log(`[bench allreduce] gloo W=${workers} failed: ${r.stderr.trim().split('\n').at(-1)}`); continue; }
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { results: Record<string, number[]> };
      for (const row of results.filter((x) => x.workers === workers)) {
        const secs = median(out.results[String(row.bytes)]!);
        row.glooSeconds = +secs.toFixed(5);
        row.glooBusGBps = +((2 * (workers - 1) / workers) * row.bytes / secs / 1e9).toFixed(3);
        row.vsGloo = +(row.busGBps / row.glooBusGBps).toFixed(3);
      }
      log(`[bench allreduce] gloo W=${workers} done`);
    }
  } else {
    log('[bench allreduce] gloo: python3 with torch not found (pip install torch), no Gloo comparison');
  }
  const rows = results.map((r) => ({
    workers: r.workers, MiB: r.bytes / MiB, ms: r.seconds * 1000, 'bus GB/s': r.busGBps, 'ws GB/s': r.baselineGBps, ratio: r.ratioToBaseline,
    ...(r.glooBusGBps !== undefined ? { 'gloo GB/s': r.glooBusGBps, 'vs gloo': r.vsGloo! } : {}),
  }));
  if (args.json) process.stderr.write(''); // the table goes to stdout either way; JSON is the last line
  printTable(`ring allreduce on loopback (${segmentBytes / 1024} KiB segments; baseline: one ws stream, same bytes, same frames)`, rows);
  const largest = sizes[sizes.length - 1]!;
  return {
    bench: 'allreduce', segmentBytes, sizes, results, gloo: gloo ? { torch: gloo } : null,
    baselineGBps: +(largest / baseline.get(largest)! / 1e9).toFixed(3),
    baselineBySize: Object.fromEntries([...baseline].map(([b, s]) => [b, +(b / s / 1e9).toFixed(3)])),
    cores: (await import('node:os')).availableParallelism(),
  };
}

const role = process.argv[2];
if (role === 'worker') await workerMain();
else if (role === 'sink') await sinkMain();
else if (role === 'source') await sourceMain();
else if (process.argv[1] === here) {
  const json = process.argv.includes('--json');
  const result = await runAllreduceBench({ json, quick: process.argv.includes('--quick') });
  if (json) console.log(JSON.stringify(result));
  process.exit(0);
}
