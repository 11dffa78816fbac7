// The ps-lite baseline of `bench ps`: runs bench/pslite/ps-bench (a C++ parameter server over
// ps-lite's ZeroMQ van doing the same pull + push of unique random rows, with SGD or AdaGrad in
// its request handle) as ps-lite wants it, one scheduler, S servers and W workers on loopback,
// and returns the workers' timings and CPU time, and the servers' CPU time over the timed rounds
// (sampled from /proc between the first worker's TIMED_START and the last worker's result).
// Built by bench/pslite/build.sh; absent, the bench says how.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpuMsOfAll } from './proc-cpu.ts';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const PSLITE_BIN = fileURLToPath(new URL('./pslite/build/ps-bench', import.meta.url));
export const PSLITE_HOWTO = 'no ps-lite comparison: build it with bench/pslite/build.sh (needs the ps-lite source: '
  + 'the fetch tool\'s mirror of github:dmlc/ps-lite, or PSLITE_SRC; and apt-get install -y g++ protobuf-compiler libzmq3-dev libprotobuf-dev)';

export function psliteBuilt(): boolean { return existsSync(PSLITE_BIN); }

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

export interface PsliteRun { rows: number; dim: number; keys: number; rounds: number; warmup: number; optimizer: 'sgd' | 'adagrad'; lr: number }

export interface PsliteResult {
  /** Each worker's { pullMs, pushMs, cpuMs } over its timed rounds. */
  workers: { pullMs: number; pushMs: number; cpuMs: number }[];
  /** The servers' CPU time (all of them, every thread) over the timed rounds, ms. */
  serverCpuMs: number;
}

/** One ps-lite job (fill, warm-up, timed rounds). */
export async function runPslite(servers: number, workers: number, job: PsliteRun): Promise<PsliteResult> {
  const port = await freePort();
  const base = {
    ...process.env, DMLC_NUM_SERVER: String(servers), DMLC_NUM_WORKER: String(workers),
    DMLC_PS_ROOT_URI: '127.0.0.1', DMLC_PS_ROOT_PORT: String(port), DMLC_NODE_HOST: '127.0.0.1',
    ROWS: String(job.rows), DIM: String(job.dim), KEYS: String(job.keys), ROUNDS: String(job.rounds),
    WARMUP: String(job.warmup), OPT: job.optimizer, LR: String(job.lr),
  };
  const roles = ['scheduler', ...Array<string>(servers).fill('server'), ...Array<string>(workers).fill('worker')];
  let worker = 0, started = 0, finished = 0, cpu0 = NaN, cpu1 = NaN;
  const serverPids: number[] = [];
  const procs = roles.map((role) => {
    const seed = role === 'worker' ? ++worker : 0;
    const p = spawn(PSLITE_BIN, [], { env: { ...base, DMLC_ROLE: role, SEED: String(seed) }, stdio: ['ignore', 'pipe', 'pipe'] });
    if (role === 'server') serverPids.push(p.pid!);
    let out = '', err = '';
    createInterface({ input: p.stdout! }).on('line', (l) => {
      out += l + '\n';
      if (role !== 'worker') return;
      if (l === 'TIMED_START' && started++ === 0) cpu0 = cpuMsOfAll(serverPids);
      else if (l.startsWith('{') && ++finished === workers) cpu1 = cpuMsOfAll(serverPids);
    });
    p.stderr!.on('data', (b: Buffer) => { err += b; });
    const done = new Promise<string>((resolve, reject) => p.on('close', (code, sig) => (code === 0 ? resolve(out)
      : reject(new Error(`ps-lite ${role} exited ${code ?? sig}: ${err.trim().split('\n').find((l) => /Check failed|error/i.test(l)) ?? err.trim().split('\n').at(-1)}`)))));
    return { role, p, done };
  });
  // A hang guard: a stuck job is killed (its processes then exit non-zero and the run fails).
  const guard = setTimeout(() => { for (const x of procs) x.p.kill('SIGKILL'); }, 600_000);
  try {
    const outs = await Promise.all(procs.map((x) => x.done));
    return { workers: outs.filter((_, i) => procs[i]!.role === 'worker').map((o) => JSON.parse(o.trim().split('\n').at(-1)!)), serverCpuMs: cpu1 - cpu0 };
  } finally {
    clearTimeout(guard);
    for (const x of procs) if (x.p.exitCode === null) x.p.kill('SIGKILL');
  }
}
