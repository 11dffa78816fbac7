// CPU time (user + system) of another process on this machine, from /proc/<pid>/stat, for the
// benchmarks' breakdowns of where a round's time goes (bench ps: the servers' CPU per round).
// Linux only: elsewhere, and for a process that is gone, NaN.
import { readFileSync } from 'node:fs';

/** Clock ticks a second of /proc's utime and stime (USER_HZ: 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

/** CPU time so far, ms (resolution 10 ms), of the process or thread whose /proc stat file is `statPath`; NaN if it cannot be read (gone). */
export function cpuMsOfStat(statPath: string): number {
  try {
    const stat = readFileSync(statPath, 'utf8');
    // Fields after the command name (which may hold spaces, in parentheses): utime and stime are the 12th and 13th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** The process's CPU time so far, ms (resolution 10 ms), or NaN. */
export const cpuMsOf = (pid: number): number => cpuMsOfStat(`/proc/${pid}/stat`);

/** The summed CPU time of `pids`, ms (NaN if any cannot be read). */
export const cpuMsOfAll = (pids: number[]): number => pids.reduce((a, p) => a + cpuMsOf(p), 0);
