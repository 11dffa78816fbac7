// Allreduce configurations measured side by side under the same load: every worker process holds
// one RingAllreduce per configuration (segment size, schedule limits) and the reps alternate
// between them (A, B, C, A, B, C, ..), so a load spike from the other users of a shared machine
// falls on all of them alike. Separate runs of each configuration minutes apart swung 2-3x on the
// 2-core machine (load 5-9, 2026-12-02 session 7), more than the differences being measured.
//
// `node --import tsx bench/allreduce-ab.ts [--json]`, with AB_WORKERS=4, AB_SIZES=16,64 (MiB),
// AB_REPS=9 and AB_CONFIGS=`seg=2048,seg=512,seg=512;halving=off` (segment KiB; halving=off: the
// ring; exchange=on|off: the direct exchange at W = 2 at every size, or never; buf=wasm|plain: the
// op buffer an allreduceBuffer() in the adder's WASM memory, or a plain Float32Array, the default). Prints the median ms (the slowest rank's per rep) and CPU ms per op and rank
// (user + system, system) per configuration and size.
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { RingAllreduce, allreduceBuffer, releaseAllreduceBuffer } from '../src/allreduce/index.ts';
import { JsonProc, serveCommands } from '../test/helpers/json-proc.ts';
import { printTable } from './table.ts';

const MiB = 1 << 20;
const LONG = 600_000;
const here = fileURLToPath(import.meta.url);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

interface Config { name: string; segmentBytes: number; halvingMinBytes?: number; exchangeMaxBytes?: number; wasmBuffer?: boolean }

/** `seg=512;halving=off` -> a Config; throws naming the bad part. */
export function parseConfig(text: string): Config {
  const c: Config = { name: text, segmentBytes: 2 * MiB };
  for (const part of text.split(';').filter(Boolean)) {
    const [k, v] = part.split('=');
    if (k === 'seg' && Number(v) > 0) c.segmentBytes = Number(v) * 1024;
    else if (k === 'halving' && v === 'off') c.halvingMinBytes = Infinity;
    else if (k === 'halving' && v === 'on') c.halvingMinBytes = 0;
    else if (k === 'exchange' && v === 'off') c.exchangeMaxBytes = 0;
    else if (k === 'exchange' && v === 'on') c.exchangeMaxBytes = Number.MAX_SAFE_INTEGER;
    else if (k === 'buf' && (v === 'wasm' || v === 'plain')) c.wasmBuffer = v === 'wasm';
    else throw new Error(`bad AB_CONFIGS part '${part}': use seg=<KiB>, halving=on|off, exchange=on|off, buf=wasm|plain, joined by ';', configurations by ','`);
  }
  return c;
}

async function workerMain(): Promise<void> {
  const secret = new TextEncoder().encode(process.env.HYBRIDPS_SECRET!);
  const configs = (JSON.parse(process.env.AB_CONFIG_LIST!) as Config[]);
  const rings = await Promise.all(configs.map((c) => RingAllreduce.create({
    nodeId: process.env.NODE_ID!, secret, segmentBytes: c.segmentBytes, timeoutMs: 60_000, halvingMinBytes: c.halvingMinBytes, exchangeMaxBytes: c.exchangeMaxBytes,
  })));
  process.stdout.write(JSON.stringify({ urls: rings.map((r) => r.url) }) + '\n');
  serveCommands(async (m) => {
    if (m.cmd === 'ring') { rings.forEach((r, k) => r.setRing(m.members[k], 1)); return { ok: true }; }
    const bufs = configs.map((c) => (c.wasmBuffer ? allreduceBuffer(m.bytes / 4) : new Float32Array(m.bytes / 4)));
    for (const [k, r] of rings.entries()) { bufs[k]!.fill(1); await r.allreduce(bufs[k]!); } // warm-up, and a barrier
    const seconds: number[][] = rings.map(() => []), user = rings.map(() => 0), sys = rings.map(() => 0);
    for (let i = 0; i < m.reps; i++) {
      for (let k = 0; k < rings.length; k++) {
        const buf = bufs[k]!;
        buf.fill(1);
        const c = process.cpuUsage(), t = performance.now();
        await rings[k]!.allreduce(buf);
        seconds[k]!.push((performance.now() - t) / 1000);
        const d = process.cpuUsage(c);
        user[k]! += d.user; sys[k]! += d.system;
      }
    }
    bufs.forEach((buf, k) => {
      if (buf[0] !== m.workers || buf[buf.length - 1] !== m.workers) throw new Error(`wrong sum ${buf[0]} (${configs[k]!.name}), expected ${m.workers}`);
      if (configs[k]!.wasmBuffer) releaseAllreduceBuffer(buf);
    });
    return { seconds, cpuMs: user.map((u, k) => (u + sys[k]!) / 1000 / m.reps), sysMs: sys.map((s) => s / 1000 / m.reps) };
  });
}

export async function runAb(): Promise<object[]> {
  const workers = Number(process.env.AB_WORKERS ?? 4);
  const sizes = (process.env.AB_SIZES ?? '16,64').split(',').map((x) => Number(x) * MiB);
  const reps = Number(process.env.AB_REPS ?? 9);
  const configs = (process.env.AB_CONFIGS ?? 'seg=2048,seg=512,seg=512;halving=off').split(',').map(parseConfig);
  const env = { HYBRIDPS_SECRET: randomBytes(16).toString('hex'), HYBRIDPS_LOG: 'warn', AB_CONFIG_LIST: JSON.stringify(configs) };
  const procs = Array.from({ length: workers }, (_, i) => JsonProc.start(here, { ...env, NODE_ID: `w${i}` }, { args: ['worker'] }));
  const rows: object[] = [];
  try {
    const urls = (await Promise.all(procs.map((p) => p.next(LONG)))).map((x) => x.urls as string[]);
    const members = configs.map((_, k) => urls.map((u, i) => ({ nodeId: `w${i}`, address: u[k]! })));
    await Promise.all(procs.map((p) => p.call({ cmd: 'ring', members }, LONG)));
    for (const bytes of sizes) {
      const out = await Promise.all(procs.map((p) => p.call({ cmd: 'run', bytes, reps, workers }, LONG)));
      configs.forEach((c, k) => {
        const perRep = Array.from({ length: reps }, (_, i) => Math.max(...out.map((o) => o.seconds[k][i] as number)));
        const ms = median(perRep) * 1000;
        const mean = (f: 'cpuMs' | 'sysMs') => out.reduce((a, o) => a + (o[f][k] as number), 0) / workers;
        rows.push({ W: workers, size: `${bytes / MiB} MiB`, config: c.name, ms: +ms.toFixed(2), 'bus GB/s': +((2 * (workers - 1) / workers) * bytes / ms / 1e6).toFixed(3), 'cpu ms/op': +mean('cpuMs').toFixed(2), 'sys ms/op': +mean('sysMs').toFixed(2) });
      });
    }
  } finally { await Promise.all(procs.map((p) => p.stop())); }
  return rows;
}

if (process.argv[2] === 'worker') await workerMain();
else if (process.argv[1] === here) {
  const rows = await runAb();
  if (process.argv.includes('--json')) console.log(JSON.stringify(rows));
  else printTable(`allreduce A/B, configurations interleaved rep by rep (${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')} load at the end)`, rows as Record<string, unknown>[]);
  process.exit(0);
}
