// The loopback ceiling for an allreduce's traffic: W processes in a ring, each sending the bytes a
// rank of the allreduce sends (2(W-1)/W x the buffer) to its right neighbour while it receives as
// many from its left, over raw TCP, with no adds, no headers and no schedule. One raw stream
// (bench/allreduce.ts, `vs raw`) has the whole 2-core machine for one sender and one receiver; an
// allreduce of W ranks runs W such streams at once, so this ring is what the same machine can
// carry for it. Each rank writes from a buffer of the op's size (cold, as the allreduce's values
// are) in segment-sized writes with the ring's backpressure (16 MiB unwritten), and reads with
// `onread` into one 1 MiB buffer, as the ring's receiver does. A rep ends on a rank when it has
// written and received its share; the rep's time is the slowest rank's. CPU (user and system) per
// rep and rank is reported: the kernel's cost of moving these bytes, the floor under the
// allreduce's CPU per op.
//
// Role: `node --import tsx bench/raw-ring.ts peer`, driven by JSON lines (test/helpers/json-proc.ts).
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { JsonProc, serveCommands } from '../test/helpers/json-proc.ts';

const MiB = 1 << 20;
const LONG = 600_000;
const here = fileURLToPath(import.meta.url);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

/** One ring member: listens for its right neighbour's dial, dials its left neighbour (it reads from that socket). */
async function peerMain(): Promise<void> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const outbound = new Promise<Socket>((r) => server.once('connection', r));
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
  // Bytes received in all, and those the reps so far are owed: a global count, since the left
  // neighbour may start a case's first rep before this rank has its command.
  let received = 0, expected = 0;
  let onReceived: () => void = () => {};
  let out: Socket | null = null;
  // readerThread: the receiving socket lives in a worker thread (raw-ring-reader.mjs), which
  // counts into `counts` (bytes received, bytes this thread waits for) and posts when they meet.
  let counts: BigInt64Array | null = null;
  const receivedNow = () => (counts ? Number(Atomics.load(counts, 0)) : received);
  serveCommands(async (m) => {
    if (m.cmd === 'connect') {
      if (m.readerThread) {
        counts = new BigInt64Array(new SharedArrayBuffer(16));
        const reader = new Worker(new URL('./raw-ring-reader.mjs', import.meta.url), { workerData: { leftPort: m.leftPort, counts: counts.buffer } });
        reader.unref();
        await new Promise<void>((r, j) => { reader.once('message', () => r()); reader.once('error', j); });
        reader.on('message', () => onReceived());
      } else {
        const inbound = connect({
          host: '127.0.0.1', port: m.leftPort,
          onread: { buffer: new Uint8Array(MiB), callback: (n: number) => { received += n; onReceived(); return true; } },
        });
        inbound.setNoDelay(true);
        await new Promise<void>((r, j) => { inbound.once('connect', r); inbound.once('error', j); });
      }
      out = await outbound;
      out.setNoDelay(true);
      return { ok: true };
    }
    if (m.cmd === 'run') {
      const sock = out!;
      const bytes = m.bytes as number, segment = m.segmentBytes as number;
      const src = new Uint8Array(m.bufferBytes as number).fill(1);
      const rep = () => new Promise<number>((resolve) => {
        const t = performance.now();
        expected += bytes;
        if (counts) Atomics.store(counts, 1, BigInt(expected));
        let sent = 0, written = 0;
        const check = () => { if (written === bytes && receivedNow() >= expected) { onReceived = () => {}; resolve((performance.now() - t) / 1000); } };
        onReceived = check;
        const pump = () => {
          while (sent < bytes && sock.writableLength < 16 * MiB) {
            const at = sent % src.length, n = Math.min(segment, bytes - sent, src.length - at);
            sent += n;
            sock.write(src.subarray(at, at + n), () => { written += n; check(); });
          }
          if (sent < bytes) sock.once('drain', pump);
        };
        pump();
      });
      await rep(); // warm-up, and a barrier of sorts: every rank waits for its left neighbour's bytes
      const seconds: number[] = [];
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < m.reps; i++) seconds.push(await rep());
      const cpu = process.cpuUsage(cpu0);
      return { seconds, userMs: cpu.user / 1000 / m.reps, sysMs: cpu.system / 1000 / m.reps, receivedTotal: receivedNow() };
    }
    throw new Error(`unknown command ${m.cmd}`);
  });
}

export interface RawRingResult {
  /** Median over reps of the slowest rank's time. */
  seconds: number;
  /** Bytes each rank sent per rep / seconds: comparable to the allreduce's bus bandwidth. */
  perLinkGBps: number;
  /** Mean over ranks, per rep: user and system CPU ms. */
  userMs: number;
  sysMs: number;
  /** Bytes each rank had received in all (every case so far, warm-ups included) when it answered: the fewest of the ranks, and the most. */
  receivedTotal: { min: number; max: number };
}

/**
 * W raw-ring processes, each case sending `2(W-1)/W x bytes` per rank per rep (written in
 * `segmentBytes` writes from a buffer of `bytes`); results by case bytes.
 */
export async function runRawRing(workers: number, cases: { bytes: number; reps: number }[], segmentBytes: number, timeoutMs = LONG, o: { readerThread?: boolean } = {}): Promise<Map<number, RawRingResult>> {
  const out = new Map<number, RawRingResult>();
  const procs = Array.from({ length: workers }, () => JsonProc.start(here, {}, { args: ['peer'] }));
  try {
    const ports = (await Promise.all(procs.map((p) => p.next(timeoutMs)))).map((x) => x.port as number);
    await Promise.all(procs.map((p, i) => p.call({ cmd: 'connect', leftPort: ports[(i - 1 + workers) % workers], readerThread: o.readerThread ?? false }, timeoutMs)));
    for (const c of cases) {
      const perRank = Math.round((2 * (workers - 1) / workers) * c.bytes);
      const rs = await Promise.all(procs.map((p) => p.call({ cmd: 'run', bytes: perRank, bufferBytes: c.bytes, segmentBytes, reps: c.reps }, timeoutMs)));
      const seconds = median(Array.from({ length: c.reps }, (_, i) => Math.max(...rs.map((r) => r.seconds[i] as number))));
      const mean = (k: 'userMs' | 'sysMs') => rs.reduce((a, r) => a + (r[k] as number), 0) / workers;
      const totals = rs.map((r) => r.receivedTotal as number);
      out.set(c.bytes, { seconds, perLinkGBps: perRank / seconds / 1e9, userMs: mean('userMs'), sysMs: mean('sysMs'), receivedTotal: { min: Math.min(...totals), max: Math.max(...totals) } });
    }
  } finally { await Promise.all(procs.map((p) => p.stop())); }
  return out;
}

if (process.argv[2] === 'peer') await peerMain();
