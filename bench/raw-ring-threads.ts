// Does a second thread per rank win for the ring's traffic on this machine? The raw ring
// (bench/raw-ring.ts: W processes each sending a rank's bytes to the right while receiving as many
// from the left, no adds) with every socket on the main thread, against the same ring with the
// receiving socket in a worker thread (raw-ring-reader.mjs; the main thread only writes), as a
// data-plane thread would split a rank. Rounds alternate the two (one-thread, two-thread, ...) so
// both see the same load; the ratio is per round, the table gives the rounds' median and range.
// This is the ceiling of what moving our streams into a thread can win: at W = 2 our allreduce
// already runs at 0.9-1.0 of the one-thread raw ring (bench/RESULTS.md).
//
// `npm run bench -- rawring-threads [--json] [--quick]`; RAW_RING_WORKERS=2,4 and RAW_RING_SIZES=16,64 (MiB) narrow it.
import { printTable } from './table.ts';
import { runRawRing } from './raw-ring.ts';
import { DEFAULT_SEGMENT_BYTES } from '../src/allreduce/index.ts';

const MiB = 1 << 20;
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };

export async function runRawRingThreadsBench(args: { json: boolean; quick?: boolean }): Promise<object> {
  const log = (s: string) => (args.json ? process.stderr : process.stdout).write(s + '\n');
  const workers = (process.env.RAW_RING_WORKERS ?? '2,4').split(',').map(Number);
  const sizes = (process.env.RAW_RING_SIZES ?? '16,64').split(',').map((m) => Number(m) * MiB);
  const rounds = args.quick ? 1 : 3;
  const cases = sizes.map((bytes) => ({ bytes, reps: args.quick ? 3 : bytes >= 64 * MiB ? 7 : 11 }));
  const rows: Record<string, unknown>[] = [];
  const results: object[] = [];
  for (const w of workers) {
    const per = new Map<number, { one: number[]; two: number[]; ratio: number[]; cpuOne: number[]; cpuTwo: number[] }>();
    for (const c of cases) per.set(c.bytes, { one: [], two: [], ratio: [], cpuOne: [], cpuTwo: [] });
    for (let r = 0; r < rounds; r++) {
      const one = await runRawRing(w, cases, DEFAULT_SEGMENT_BYTES);
      const two = await runRawRing(w, cases, DEFAULT_SEGMENT_BYTES, undefined, { readerThread: true });
      for (const c of cases) {
        const a = one.get(c.bytes)!, b = two.get(c.bytes)!, p = per.get(c.bytes)!;
        p.one.push(a.perLinkGBps); p.two.push(b.perLinkGBps); p.ratio.push(b.perLinkGBps / a.perLinkGBps);
        p.cpuOne.push(a.userMs + a.sysMs); p.cpuTwo.push(b.userMs + b.sysMs);
        log(`[bench rawring-threads] W=${w} ${c.bytes / MiB} MiB round ${r + 1}: one thread ${a.perLinkGBps.toFixed(3)} GB/s per link (${(a.userMs + a.sysMs).toFixed(1)} CPU ms), reader thread ${b.perLinkGBps.toFixed(3)} (${(b.userMs + b.sysMs).toFixed(1)}): x${(b.perLinkGBps / a.perLinkGBps).toFixed(2)}`);
      }
    }
    for (const c of cases) {
      const p = per.get(c.bytes)!;
      const row = {
        W: w, size: `${c.bytes / MiB} MiB`, 'one thread GB/s': +median(p.one).toFixed(3), 'reader thread GB/s': +median(p.two).toFixed(3),
        'two/one (median)': +median(p.ratio).toFixed(2), 'two/one range': `${Math.min(...p.ratio).toFixed(2)}-${Math.max(...p.ratio).toFixed(2)}`,
        'cpu ms/rep one': +median(p.cpuOne).toFixed(1), 'cpu ms/rep two': +median(p.cpuTwo).toFixed(1),
      };
      rows.push(row);
      results.push({ workers: w, bytes: c.bytes, oneGBps: p.one, twoGBps: p.two, ratio: p.ratio, cpuMsOne: p.cpuOne, cpuMsTwo: p.cpuTwo });
    }
  }
  printTable(`raw ring, every socket on the main thread against the receiving socket in a worker thread (${rounds} alternating rounds, per link GB/s)`, rows);
  return { bench: 'rawring-threads', rounds, results, cores: (await import('node:os')).availableParallelism(), load: (await import('node:os')).loadavg() };
}
