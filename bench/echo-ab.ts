// Is WebSocket's framing what a round costs? The echo of bench ps's raw baseline (bench/raw-ws-echo.ts:
// a pull of 4096 keys out and 4096 x 64 f32 rows back, a push of both out and an ack back) over ws
// and over a plain u32-length-framed TCP socket, the two interleaved in one run, with the wall
// time and both sides' CPU per round (the server's from /proc, the client's own count).
//
//   node --import tsx bench/echo-ab.ts [PAIRS] [ROUNDS]     (default 5 pairs of 200 rounds)
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { cpuMsOf } from './proc-cpu.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const echo = here('./raw-ws-echo.ts');
const [pairs = 5, rounds = 200] = process.argv.slice(2).map(Number);
const keyBytes = 4096 * 8, valueBytes = 4096 * 64 * 4, warmup = 20;

async function startServer(mode: string): Promise<{ url: string; pid: number; stop: () => void }> {
  const p = spawn(process.execPath, ['--import', 'tsx', echo, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  const url: string = await new Promise((resolve) => createInterface({ input: p.stdout! }).on('line', (l) => {
    const m = /^HYBRIDPS_READY (.*)$/.exec(l); if (m) resolve(JSON.parse(m[1]!).url);
  }));
  return { url, pid: p.pid!, stop: () => p.stdin!.end() };
}

/** One client run; the server's CPU is sampled from its TIMED_START to its result line. */
function runClient(mode: string, url: string, serverPid: number): Promise<{ ms: number; serverCpu: number; clientCpu: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', echo, mode, url, String(keyBytes), String(valueBytes), String(rounds), String(warmup)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let cpu0 = NaN, out: Record<string, number> | undefined, cpu1 = NaN;
    createInterface({ input: p.stdout! }).on('line', (l) => {
      if (l === 'TIMED_START') cpu0 = cpuMsOf(serverPid);
      else if (l.startsWith('{')) { cpu1 = cpuMsOf(serverPid); out = JSON.parse(l); }
    });
    p.on('close', (code) => (code === 0 && out ? resolve({ ms: (out.pullMs! + out.pushMs!) / rounds, serverCpu: (cpu1 - cpu0) / rounds, clientCpu: out.cpuMs! / rounds }) : reject(new Error(`${mode} exited ${code}`))));
  });
}

const ws = await startServer('server'), tcp = await startServer('server-tcp');
const rows: Record<string, string | number>[] = [];
try {
  for (let i = 0; i < pairs; i++) {
    for (const [name, mode, s] of (i % 2 ? [['tcp', 'client-tcp', tcp], ['ws', 'client', ws]] : [['ws', 'client', ws], ['tcp', 'client-tcp', tcp]]) as [string, string, typeof ws][]) {
      const r = await runClient(mode, s.url, s.pid);
      rows.push({ pair: i, link: name, msPerRound: +r.ms.toFixed(3), serverCpuMs: +r.serverCpu.toFixed(2), clientCpuMs: +r.clientCpu.toFixed(2) });
      console.log(JSON.stringify(rows.at(-1)));
    }
  }
} finally { ws.stop(); tcp.stop(); }
const med = (v: number[]) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const summary = Object.fromEntries(['ws', 'tcp'].map((l) => {
  const rs = rows.filter((r) => r.link === l);
  return [l, Object.fromEntries(['msPerRound', 'serverCpuMs', 'clientCpuMs'].map((k) => [k, med(rs.map((r) => Number(r[k])))]))];
}));
console.log(JSON.stringify({ median: summary, pairs, rounds }));
