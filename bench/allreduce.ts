// Ring allreduce on loopback: W = 2 and 4 worker processes, buffers of 1-64 MiB, median of
// repeated runs, bus bandwidth = 2(W-1)/W x bytes / time. Baseline in the same run: one raw TCP
// stream between two processes moving the same bytes (written in segment-sized writes, read with
// onread into one preallocated buffer), timed until the receiver has it all. Rows for the DLRM
// sample's dense gradient (its actual sizes, W = 2) in ms per step. Gloo (PyTorch's gloo backend)
// in the same run when a python with torch is found (HYBRIDPS_TORCH_PYTHON, else python3 on PATH,
// else /usr/bin/python3: Debian's python3-torch installs there). A second baseline per W, the raw
// ring (bench/raw-ring.ts: W processes each sending a rank's bytes to its right neighbour at once,
// no adds): the loopback ceiling for an allreduce's traffic on this machine (`vs raw ring`). CPU
// per op and rank, user and system apart, for ours, the raw ring and Gloo. The op buffer is an
// allreduceBuffer() (in the adder's WASM memory: adds in place); ALLREDUCE_BUFFER=plain measures a
// plain Float32Array (each reduced block copied into WASM memory and back).
//
// `node --import tsx bench/allreduce.ts [--json] [--quick] [--crossover | --tls]`. --crossover: W = 2,
// direct exchange against the ring, and W = 4, halving/doubling against the ring, at 64 KiB-16 MiB
// (how EXCHANGE_MAX_BYTES and HALVING_MIN_BYTES were chosen). --tls: W = 2 rings, plain and then
// over mutual TLS (control links and data stream), same sizes. The same
// file is the worker and the baseline processes (first argument `worker`, `sink` or `source`),
// driven by JSON lines on stdin.
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { gcObserver } from './gc-observer.ts';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo } from 'node:net';
import { RingAllreduce, DEFAULT_SEGMENT_BYTES, EXCHANGE_MAX_BYTES, HALVING_MIN_BYTES, allreduceBuffer, releaseAllreduceBuffer } from '../src/allreduce/index.ts';
import { chooseSchedule } from '../src/allreduce/schedule.ts';
import { DLRM_PRESETS, dlrmSpec } from '../src/model/dlrm.ts';
import { denseSizes } from '../src/model/model-spec.ts';
import { printTable } from './table.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTls } from '../src/transport/index.ts';
import { dialTlsOptions, listenerTlsOptions } from '../src/transport/tls.ts';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { makeLocalTls, tlsEnv } from '../src/launch/tls-certs.ts';
import { JsonProc, serveCommands } from '../test/helpers/json-proc.ts';
import { runRawRing } from './raw-ring.ts';

const MiB = 1 << 20;
const here = fileURLToPath(import.meta.url);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

/** A child process of this file in role `role` (worker, sink, source), driven by JSON lines. */
const startRole = (role: string, env: Record<string, string>) =>
  JsonProc.start(here, env, { args: [role], nodeArgs: process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) });
const LONG = 600_000;
const GLOO = fileURLToPath(new URL('./gloo_allreduce.py', import.meta.url));

/** The first python that imports torch with Gloo, and torch's version; null when none does. */
function findTorchPython(): { python: string; torch: string } | null {
  const candidates = process.env.HYBRIDPS_TORCH_PYTHON ? [process.env.HYBRIDPS_TORCH_PYTHON] : ['python3', '/usr/bin/python3'];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch, torch.distributed as d; assert d.is_gloo_available(); print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { python, torch: r.stdout.trim() };
  }
  return null;
}

/** Floats in the DLRM sample's dense parameters, per preset (the hybrid layout's dense sync). */
const denseFloats = (preset: 'small' | 'gpu') => denseSizes(dlrmSpec(DLRM_PRESETS[preset])).reduce((a, p) => a + p.size, 0);

// ---------------------------------------------------------------------------------------------
// Child roles

async function workerMain(): Promise<void> {
  const secret = new TextEncoder().encode(process.env.HYBRIDPS_SECRET!);
  const exchangeMaxBytes = process.env.EXCHANGE_MAX_BYTES ? Number(process.env.EXCHANGE_MAX_BYTES) : undefined;
  const halvingMinBytes = process.env.HALVING_MIN_BYTES ? Number(process.env.HALVING_MIN_BYTES) : undefined;
  const ring = await RingAllreduce.create({ nodeId: process.env.NODE_ID!, secret, tls: loadTls(), segmentBytes: Number(process.env.SEGMENT_BYTES), timeoutMs: 60_000, exchangeMaxBytes, halvingMinBytes });
  process.stdout.write(JSON.stringify({ url: ring.url }) + '\n');
  serveCommands(async (m) => {
    if (m.cmd === 'ring') { ring.setRing(m.members, m.epoch); return { ok: true }; }
    if (m.cmd === 'run') {
      const plain = process.env.ALLREDUCE_BUFFER === 'plain';
      const buf = plain ? new Float32Array(m.bytes / 4) : allreduceBuffer(m.bytes / 4);
      const seconds: number[] = [];
      const gcs = gcObserver();
      buf.fill(1);
      await ring.allreduce(buf); // warm-up, and a barrier: nobody starts timing before all are here
      const before = { reads: ring.stats.reads, segments: ring.stats.segmentsSent };
      const opCpu = { user: 0, system: 0 };
      for (let i = 0; i < m.reps; i++) {
        buf.fill(1); // sums of sums would overflow to Infinity after a few dozen reps
        const c = process.cpuUsage();
        const t = performance.now();
        await ring.allreduce(buf, 'sum', { f16: m.f16 });
        seconds.push((performance.now() - t) / 1000);
        const d = process.cpuUsage(c);
        opCpu.user += d.user; opCpu.system += d.system;
      }
      if (buf[0] !== m.workers || buf[buf.length - 1] !== m.workers) throw new Error(`wrong sum ${buf[0]}, expected ${m.workers}`);
      // Per op on this rank: reads that returned data, segments written (the syscalls, roughly).
      // CPU per op (this process, during the op only: the bench's fill is outside), user and
      // system apart: system is the kernel's share (send, TCP, receive copies), the floor of which
      // the raw ring measures; on a shared machine the wall time is mostly waiting to be
      // scheduled, the CPU an op costs is what changes make smaller.
      const perOp = { reads: (ring.stats.reads - before.reads) / m.reps, segments: (ring.stats.segmentsSent - before.segments) / m.reps, cpuMs: (opCpu.user + opCpu.system) / 1000 / m.reps, sysMs: opCpu.system / 1000 / m.reps };
      if (!plain) releaseAllreduceBuffer(buf);
      return { seconds, cpu: process.cpuUsage(), gc: gcs.stop(), exchanges: ring.stats.exchanges, perOp };
    }
    throw new Error(`unknown command ${m.cmd}`);
  });
}

/**
 * The raw-stream baseline's receiver: it dials the source (so it can read with onread into one
 * preallocated buffer, as the ring's receiver does) and reads an 8-byte length, then that many
 * bytes, and answers one byte.
 */
async function sinkMain(): Promise<void> {
  let want = -1, got = 0, lenBytes = 0;
  const len = new Uint8Array(8);
  const tls = loadTls(); // --tls: the raw baseline over TLS too, for the TLS ring's rows
  const where = { port: Number(process.env.SOURCE_PORT), host: '127.0.0.1' };
  const sock: import('node:net').Socket = (tls ? (o: object) => tlsConnect({ ...where, ...dialTlsOptions(tls), ...o }) : (o: object) => connect({ ...where, ...o }))({
    onread: {
      buffer: new Uint8Array(1 * MiB),
      callback: (n: number, d: Uint8Array) => {
        let i = 0;
        while (i < n) {
          if (want < 0) {
            const k = Math.min(8 - lenBytes, n - i);
            len.set(d.subarray(i, i + k), lenBytes); lenBytes += k; i += k;
            if (lenBytes === 8) { want = Number(new DataView(len.buffer).getBigUint64(0, true)); got = 0; lenBytes = 0; }
            continue;
          }
          const k = Math.min(want - got, n - i);
          got += k; i += k;
          if (got === want) { want = -1; sock.write(Uint8Array.of(1)); }
        }
        return true;
      },
    },
  });
  sock.setNoDelay(true);
  sock.on('close', () => process.exit(0));
}

/** The raw-stream baseline's sender: listens, and writes each transfer in segment-sized writes. */
async function sourceMain(): Promise<void> {
  const tls = loadTls();
  const server = tls ? createTlsServer(listenerTlsOptions(tls, 60_000)) : createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
  const sock = await new Promise<import('node:net').Socket>((r) => server.once(tls ? 'secureConnection' : 'connection', r));
  sock.setNoDelay(true);
  const frame = Number(process.env.SEGMENT_BYTES);
  const payload = randomBytes(frame);
  const transfer = (bytes: number) => new Promise<number>((resolve) => {
    const t = performance.now();
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(bytes), true);
    sock.write(len);
    sock.once('data', () => resolve((performance.now() - t) / 1000));
    // The same backpressure as the ring's sender: keep the socket's queue under 16 MiB.
    let sent = 0;
    const pump = () => {
      while (sent < bytes && sock.writableLength < 16 * MiB) {
        const n = Math.min(frame, bytes - sent);
        sent += n;
        sock.write(n === frame ? payload : payload.subarray(0, n));
      }
      if (sent < bytes) sock.once('drain', pump);
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

interface Row {
  workers: number; bytes: number; label: string; algo: string; seconds: number; busGBps: number;
  rawGBps?: number; ratioToRaw?: number; cpuPerWorker: number; gc: { minor: number; major: number; ms: number };
  /** Rank 0, per op: data-stream reads that returned bytes, and segments written. */
  readsPerOp: number; segmentsPerOp: number;
  /** CPU ms per op, averaged over the ranks (during the op only), and its system (kernel) part. */
  cpuMsPerOp: number; sysMsPerOp: number;
  glooSeconds?: number; glooBusGBps?: number; vsGloo?: number;
  /** Gloo's CPU ms per op (process time of a rank, all its threads), averaged over the ranks. */
  glooCpuMsPerOp?: number;
  /**
   * The raw ring (bench/raw-ring.ts): W processes sending a rank's bytes round a ring at once, no
   * adds. rawRingGBps is per link (comparable to busGBps); its CPU per rep and rank, user + system
   * and system alone: what the kernel charges for this traffic.
   */
  rawRingGBps?: number; vsRawRing?: number; rawRingCpuMs?: number; rawRingSysMs?: number;
}

/** Runs `cases` (sizes, with reps) on a ring of W worker processes; one row per case. */
async function runRing(workers: number, cases: { bytes: number; label: string; reps: number }[], env: Record<string, string>, log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const procs = Array.from({ length: workers }, (_, i) => startRole('worker', { ...env, NODE_ID: `w${i}` }));
  try {
    const urls = await Promise.all(procs.map((p) => p.next(LONG)));
    const members = urls.map((u, i) => ({ nodeId: `w${i}`, address: u.url as string }));
    await Promise.all(procs.map((p) => p.call({ cmd: 'ring', members, epoch: 1 }, LONG)));
    for (const c of cases) {
      const out = await Promise.all(procs.map((p) => p.call({ cmd: 'run', bytes: c.bytes, reps: c.reps, workers }, LONG)));
      // One rep ends when the slowest worker has its result.
      const perRep = Array.from({ length: c.reps }, (_, i) => Math.max(...out.map((o) => o.seconds[i] as number)));
      const seconds = median(perRep);
      const busGBps = (2 * (workers - 1) / workers) * c.bytes / seconds / 1e9;
      const cpu = out.reduce((a, o) => a + (o.cpu.user + o.cpu.system) / 1e6, 0) / workers;
      const gc = out[0].gc as Row['gc'];
      const algo = chooseSchedule(workers, c.bytes, { exchangeMaxBytes: Number(env.EXCHANGE_MAX_BYTES ?? EXCHANGE_MAX_BYTES), halvingMinBytes: Number(env.HALVING_MIN_BYTES ?? HALVING_MIN_BYTES) });
      const perOp = out[0].perOp as { reads: number; segments: number };
      const cpuMsPerOp = out.reduce((a, o) => a + (o.perOp.cpuMs as number), 0) / workers;
      const sysMsPerOp = out.reduce((a, o) => a + (o.perOp.sysMs as number), 0) / workers;
      rows.push({ workers, bytes: c.bytes, label: c.label, algo, seconds: +seconds.toFixed(5), busGBps: +busGBps.toFixed(3), cpuPerWorker: +cpu.toFixed(2), gc, readsPerOp: +perOp.reads.toFixed(1), segmentsPerOp: +perOp.segments.toFixed(1), cpuMsPerOp: +cpuMsPerOp.toFixed(2), sysMsPerOp: +sysMsPerOp.toFixed(2) });
      log(`[bench allreduce] W=${workers} ${c.label} (${algo}): ${(seconds * 1000).toFixed(2)} ms, ${busGBps.toFixed(3)} GB/s bus, ${cpuMsPerOp.toFixed(2)} CPU ms/op per rank (${sysMsPerOp.toFixed(2)} system), ${perOp.reads.toFixed(1)} reads/op; GCs in rank 0 during ${c.reps} reps: ${gc.minor} minor, ${gc.major} major`);
    }
  } finally { await Promise.all(procs.map((p) => p.stop())); }
  return rows;
}

/** Gloo on the same machine, same sizes and repetitions: fills the rows' gloo columns. */
function runGloo(py: { python: string }, workers: number, rows: Row[], log: (s: string) => void): void {
  if (rows.length === 0) return;
  const reps = Object.fromEntries(rows.map((r) => [String(r.bytes), repsFor(r.bytes, false)]));
  const r = spawnSync(py.python, [GLOO, String(workers), JSON.stringify(reps), ...rows.map((x) => String(x.bytes))], { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) { log(`[bench allreduce] gloo W=${workers} failed: ${r.stderr.trim().split('\n').at(-1)}`); return; }
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { results: Record<string, number[]>; cpuMs: Record<string, number> };
  for (const row of rows) {
    const secs = median(out.results[String(row.bytes)]!);
    row.glooCpuMsPerOp = +out.cpuMs[String(row.bytes)]!.toFixed(2);
    row.glooSeconds = +secs.toFixed(6);
    row.glooBusGBps = +((2 * (workers - 1) / workers) * row.bytes / secs / 1e9).toFixed(3);
    row.vsGloo = +(row.busGBps / row.glooBusGBps).toFixed(3);
  }
  log(`[bench allreduce] gloo W=${workers} done`);
}

const repsFor = (bytes: number, quick: boolean) => (quick ? 5 : bytes >= 64 * MiB ? 7 : bytes >= 16 * MiB ? 11 : bytes >= MiB ? 21 : 51);

export async function runAllreduceBench(args: { json: boolean; quick?: boolean; crossover?: boolean; tls?: boolean }): Promise<object> {
  const log = (s: string) => (args.json ? process.stderr : process.stdout).write(s + '\n');
  const quick = !!args.quick;
  const segmentBytes = Number(process.env.SEGMENT_BYTES ?? DEFAULT_SEGMENT_BYTES);
  // ALLREDUCE_SIZES=16,64 (MiB) and ALLREDUCE_WORKERS=2 narrow a run (for profiling one case).
  const sizes = process.env.ALLREDUCE_SIZES ? process.env.ALLREDUCE_SIZES.split(',').map((m) => Number(m) * MiB)
    : args.crossover ? [64 << 10, 256 << 10, 1 * MiB, 2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB]
      : quick ? [1 * MiB, 4 * MiB] : [1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB];
  const workerCounts = process.env.ALLREDUCE_WORKERS ? process.env.ALLREDUCE_WORKERS.split(',').map(Number) : [2, 4];
  // EXCHANGE_MAX_BYTES (0: off) / HALVING_MIN_BYTES (Infinity: off) in the environment set the workers' limits.
  const limits = Object.fromEntries((['EXCHANGE_MAX_BYTES', 'HALVING_MIN_BYTES'] as const).filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]!]));
  const env = { HYBRIDPS_SECRET: randomBytes(16).toString('hex'), SEGMENT_BYTES: String(segmentBytes), HYBRIDPS_LOG: 'warn', ALLREDUCE_BUFFER: process.env.ALLREDUCE_BUFFER ?? 'wasm', ...limits };
  const cases = sizes.map((bytes) => ({ bytes, label: `${bytes / MiB} MiB`, reps: repsFor(bytes, quick) }));
  const dense = (['small', 'gpu'] as const).map((preset) => ({ preset, floats: denseFloats(preset) }));

  // Baseline: one raw TCP stream, two processes, the same bytes (--tls: and one TLS stream).
  const tlsDir = args.tls ? mkdtempSync(join(tmpdir(), 'hybridps-bench-tls-')) : '';
  const tlsVars = args.tls ? tlsEnv(makeLocalTls(tlsDir), 'worker') : {};
  const rawStream = async (extraEnv: Record<string, string | undefined>, what: string) => {
    const times = new Map<number, number>();
    const source = startRole('source', { ...env, ...extraEnv } as Record<string, string>);
    const { port } = await source.next(LONG);
    const sink = startRole('sink', { ...env, ...extraEnv, SOURCE_PORT: String(port) } as Record<string, string>);
    try {
      for (const c of cases) {
        const { seconds } = await source.call({ bytes: c.bytes, reps: c.reps }, LONG);
        times.set(c.bytes, median(seconds));
        log(`[bench allreduce] ${what} ${c.label}: ${(c.bytes / median(seconds) / 1e9).toFixed(3)} GB/s`);
      }
    } finally { await Promise.all([source.stop(), sink.stop()]); }
    return times;
  };
  const raw = args.crossover ? new Map<number, number>() : await rawStream({}, 'raw stream');
  const rawTls = args.tls ? await rawStream(tlsVars, 'raw TLS stream') : new Map<number, number>();

  // Gloo runs right after ours for the same W and sizes: on a shared machine the load drifts,
  // and ratios from neighbouring minutes are the least wrong.
  const py = findTorchPython();
  if (!py) log('[bench allreduce] gloo: no python with torch found (set HYBRIDPS_TORCH_PYTHON, or apt-get install python3-torch), no Gloo comparison');
  const results: Row[] = [];
  // rawRing: the same W's raw ring right after (the loopback ceiling for this traffic, `vs raw ring`).
  const measure = async (workers: number, cs: typeof cases, extraEnv: Record<string, string> = {}, algo?: string, gloo = true, rawRing = false) => {
    const rows = await runRing(workers, cs, { ...env, ...extraEnv }, log);
    if (algo) for (const r of rows) r.algo = algo;
    if (py && gloo) runGloo(py, workers, rows, log);
    if (rawRing) {
      const rr = await runRawRing(workers, cs, segmentBytes);
      for (const r of rows) {
        const x = rr.get(r.bytes)!;
        Object.assign(r, { rawRingGBps: +x.perLinkGBps.toFixed(3), vsRawRing: +(r.busGBps / x.perLinkGBps).toFixed(3), rawRingCpuMs: +(x.userMs + x.sysMs).toFixed(2), rawRingSysMs: +x.sysMs.toFixed(2) });
        log(`[bench allreduce] raw ring W=${workers} ${r.label}: ${x.perLinkGBps.toFixed(3)} GB/s per link, ${(x.userMs + x.sysMs).toFixed(2)} CPU ms per rep and rank (${x.sysMs.toFixed(2)} system)`);
      }
    }
    results.push(...rows);
  };
  if (args.crossover) {
    const always = String(Number.MAX_SAFE_INTEGER);
    if (workerCounts.includes(2)) {
      await measure(2, cases, { EXCHANGE_MAX_BYTES: always }, 'exchange', false);
      await measure(2, cases, { EXCHANGE_MAX_BYTES: '0', HALVING_MIN_BYTES: 'Infinity' }, 'ring');
    }
    for (const w of workerCounts.filter((x) => x > 2)) {
      await measure(w, cases, { HALVING_MIN_BYTES: '0' }, 'halving', false);
      await measure(w, cases, { HALVING_MIN_BYTES: 'Infinity' }, 'ring');
    }
  } else if (args.tls) {
    // The ring either way (no exchange, no halving/doubling at W = 2): what TLS costs on the data stream, neighbouring minutes.
    const ringOnly = { EXCHANGE_MAX_BYTES: '0', HALVING_MIN_BYTES: 'Infinity' };
    try {
      await measure(2, cases, ringOnly, 'ring', false);
      await measure(2, cases, { ...ringOnly, ...tlsVars } as Record<string, string>, 'ring, TLS', false);
    } finally { rmSync(tlsDir, { recursive: true, force: true }); }
  } else {
    for (const workers of workerCounts) await measure(workers, cases, {}, undefined, true, true);
    // The DLRM sample's dense gradient, W = 2: the hybrid layout's dense sync per step.
    await measure(2, dense.map((d) => ({ bytes: d.floats * 4, label: `dlrm ${d.preset} dense (${d.floats} floats)`, reps: quick ? 21 : 101 })));
  }
  for (const r of results) {
    const t = (r.algo === 'ring, TLS' ? rawTls : raw).get(r.bytes); // the TLS ring against the TLS stream
    if (t === undefined) continue;
    r.rawGBps = +(r.bytes / t / 1e9).toFixed(3);
    r.ratioToRaw = +(r.busGBps / r.rawGBps).toFixed(3);
  }
  const anyRawRing = results.some((r) => r.rawRingGBps !== undefined);
  const rows = results.map((r) => ({
    W: r.workers, size: r.label, algo: r.algo, ms: +(r.seconds * 1000).toFixed(3), 'bus GB/s': r.busGBps,
    ...(raw.size ? { 'raw GB/s': r.rawGBps ?? '-', 'vs raw': r.ratioToRaw ?? '-' } : {}),
    ...(anyRawRing ? { 'raw ring GB/s': r.rawRingGBps ?? '-', 'vs raw ring': r.vsRawRing ?? '-' } : {}),
    ...(py ? { 'gloo ms': r.glooSeconds === undefined ? '-' : +(r.glooSeconds * 1000).toFixed(3), 'gloo GB/s': r.glooBusGBps ?? '-', 'vs gloo': r.vsGloo ?? '-' } : {}),
    'GCs minor/major': `${r.gc.minor}/${r.gc.major}`, 'reads/op': r.readsPerOp, 'segs/op': r.segmentsPerOp, 'cpu ms/op': r.cpuMsPerOp, 'sys ms/op': r.sysMsPerOp,
    ...(anyRawRing ? { 'raw ring cpu/sys ms': r.rawRingCpuMs === undefined ? '-' : `${r.rawRingCpuMs}/${r.rawRingSysMs}` } : {}),
    ...(py ? { 'gloo cpu ms/op': r.glooCpuMsPerOp ?? '-' } : {}),
    // Cores the W ranks kept busy during an op (W x CPU per op / wall time): on a shared machine,
    // the share of it an implementation got (Gloo runs 3-4 busy threads per rank, ours one).
    'cores used': +(r.workers * r.cpuMsPerOp / (r.seconds * 1000)).toFixed(2),
    ...(py ? { 'gloo cores': r.glooSeconds === undefined || r.glooCpuMsPerOp === undefined ? '-' : +(r.workers * r.glooCpuMsPerOp / (r.glooSeconds * 1000)).toFixed(2) } : {}),
    ...(anyRawRing ? { 'raw ring cores': r.rawRingGBps === undefined ? '-' : +(r.workers * r.rawRingCpuMs! / ((2 * (r.workers - 1) / r.workers) * r.bytes / r.rawRingGBps / 1e6)).toFixed(2) } : {}),
  }));
  printTable(`allreduce on loopback (${segmentBytes / 1024} KiB segments; raw: one TCP stream, same bytes${args.tls ? ' (TLS rows: one TLS stream)' : ''}${anyRawRing ? '; raw ring: W streams at once, a rank\'s bytes each, no adds' : ''}; gloo: torch ${py?.torch ?? 'not found'})`, rows);
  return {
    bench: 'allreduce', mode: args.crossover ? 'crossover' : args.tls ? 'tls' : 'default', segmentBytes, exchangeMaxBytes: EXCHANGE_MAX_BYTES, halvingMinBytes: HALVING_MIN_BYTES, sizes, results,
    gloo: py ? { torch: py.torch, python: py.python } : null, dense,
    rawBySize: Object.fromEntries([...raw].map(([b, s]) => [b, +(b / s / 1e9).toFixed(3)])),
    cores: (await import('node:os')).availableParallelism(), load: (await import('node:os')).loadavg(),
  };
}

const role = process.argv[2];
if (role === 'worker') await workerMain();
else if (role === 'sink') await sinkMain();
else if (role === 'source') await sourceMain();
else if (process.argv[1] === here) {
  const json = process.argv.includes('--json');
  const result = await runAllreduceBench({ json, quick: process.argv.includes('--quick'), crossover: process.argv.includes('--crossover'), tls: process.argv.includes('--tls') });
  if (json) console.log(JSON.stringify(result));
  process.exit(0);
}
