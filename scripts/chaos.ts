// `npm run chaos`: a BSP DLRM run with R = 2 on separate hosts (network namespaces on a bridge of
// their own, test/helpers/netns.ts), the roles started as the pods of a TFJob
// (test/helpers/pods.ts), while a random server is killed (kill -9) every K steps and restarted,
// or, with --partitions, has its link cut for a while and healed instead. At the end the final
// parameters are compared with a failure-free run of the same seed on the same hosts, and the
// report says what each fault cost. Needs root and iproute2 (as the tests do). Not part of
// `npm test`: it is a long, random run, a tool for finding what the tests did not think of.
//
//   npm run chaos -- [--steps 120] [--kill-every 20] [--servers 3] [--workers 2] [--partitions [--back-to-back]] [--no-restart]
//                    [--optimizer adagrad|sgd|emb=...,dense=...]
//                    [--cut-s 8] [--seed 1] [--timeout-s 900] [--json]
//
// --back-to-back: each next cut starts as soon as the healed server has registered again, on
// another server (a source of its take-over, under way): the overlap that an idle machine's fast
// steps made by chance (docs/operations.md, "The chaos run"), whatever the load.
//
// With --json the last line is one JSON object: kills, partitions, identical, maxAbsDiff,
// takeOverRetries, secondsLostPerFailure, and the per-fault records.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCheckpoint } from '../src/train/checkpoint.ts';
import type { DlrmTrainConfig } from '../test/helpers/train.ts';
import { readTrainingCheckpoint, maxDiff } from '../test/helpers/train.ts';
import { hybridps, medianStepS, podRun } from '../test/helpers/pod-run.ts';


function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) { process.stderr.write(`chaos: ${name} needs a number, got ${process.argv[i + 1]}\n`); process.exit(2); }
  return v;
}
const opts = {
  steps: flag('--steps', 120), killEvery: flag('--kill-every', 20), servers: flag('--servers', 3), workers: flag('--workers', 2),
  cutS: flag('--cut-s', 8), seed: flag('--seed', 1), timeoutS: flag('--timeout-s', 900),
  partitions: process.argv.includes('--partitions'), json: process.argv.includes('--json'),
  backToBack: process.argv.includes('--back-to-back'),
  restart: !process.argv.includes('--no-restart'),
  optimizer: process.argv.includes('--optimizer') ? process.argv[process.argv.indexOf('--optimizer') + 1]! : 'adagrad',
};
const say = (s: string) => process.stderr.write(`[chaos] ${s}\n`);

/** A seeded generator (xorshift32) for which server to hit: the same seed, the same faults. */
function rng(seed: number): () => number {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
}

interface Fault { kind: 'kill' | 'partition'; server: number; atStep: number; at: number; recoveredAfterS?: number; lostS?: number }

/** medianStepS: the median time between the slowest worker's steps (what a step costs without a fault). */
interface RunResult { wallS: number; checkpoint: string; faults: Fault[]; medianStepS: number; config: DlrmTrainConfig; logs: string }

const work = mkdtempSync(join(tmpdir(), 'hps-chaos-'));
const TINY = JSON.stringify({ numTables: 26, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 200 });
const RUN = ['--servers', String(opts.servers), '--workers', String(opts.workers), '--replicas', '2', '--model', TINY,
  '--batch', '64', '--steps', String(opts.steps), '--consistency', 'bsp', '--optimizer', opts.optimizer, '--eval-samples', '200', '--seed', String(opts.seed)];

async function run(name: string, withFaults: boolean, deadline: number): Promise<RunResult> {
  const faults: Fault[] = [];
  const random = rng(opts.seed);
  let nextFault = opts.killEvery;
  let lastCut = -1; // --back-to-back: the chained cut is of another server
  const r = await podRun({ work, name, args: RUN, deadline, poll: async (live) => {
    const { step, servers, hosts } = live;
    const open = faults.at(-1);
    if (open && open.recoveredAfterS === undefined && step > open.atStep) open.recoveredAfterS = (Date.now() - open.at) / 1000;
    if (!withFaults || opts.killEvery === 0 || step < nextFault || step >= opts.steps - 2) return;
    const chained = nextFault === 0; // this cut follows the last one's return at once (--back-to-back)
    nextFault = (chained ? step : nextFault) + opts.killEvery;
    const up = servers.map((p, i) => (p.proc.exitCode === null && p.proc.signalCode === null ? i : -1)).filter((i) => i >= 0);
    if (!opts.restart && up.length <= 2) return; // R = 2 needs two servers left
    const pick = opts.backToBack ? up.filter((i) => i !== lastCut) : up;
    const s = pick[Math.floor(random() * pick.length)]!;
    const fault: Fault = { kind: opts.partitions ? 'partition' : 'kill', server: s, atStep: step, at: Date.now() };
    faults.push(fault);
    if (opts.partitions) {
      say(`step ${step}: cutting server-${s}'s link for ${opts.cutS} s`);
      hosts.setLink(`ps${s}`, false);
      await new Promise((r) => setTimeout(r, opts.cutS * 1000));
      const returns = () => live.pods.all.filter((p) => p.name === `ps-${s}`).map((p) => p.log.join('')).join('').split('registered again after being declared dead').length;
      const before = returns();
      hosts.setLink(`ps${s}`, true);
      say(`step ${step}: server-${s}'s link healed`);
      lastCut = s;
      if (opts.backToBack && !chained) {
        for (const t0 = Date.now(); returns() === before && Date.now() - t0 < 30_000;) await new Promise((r) => setTimeout(r, 20));
        say(`server-${s} registered again: the next cut starts now`);
        nextFault = 0; // the next poll cuts another server
      }
    } else {
      say(`step ${step}: kill -9 server-${s}${opts.restart ? ', then restart it' : ''}`);
      servers[s]!.proc.kill('SIGKILL');
      await servers[s]!.exit;
      if (opts.restart) live.restartServer(s);
    }
  } });
  const median = medianStepS(r.stepTimes);
  for (const f of faults) if (f.recoveredAfterS !== undefined) f.lostS = Math.max(0, f.recoveredAfterS - median);
  return { wallS: r.wallS, checkpoint: r.checkpoint, faults, medianStepS: median, config: r.config, logs: r.logs };
}

async function main(): Promise<void> {
  const deadline = Date.now() + opts.timeoutS * 1000;
  mkdirSync(join(work, 'data'), { recursive: true });
  hybridps(['gen-data', '--out', join(work, 'data', 'train.tsv'), '--samples', String(Math.max(20_000, opts.steps * 64 * opts.workers * 1.2)),
    '--seed', String(opts.seed), '--rows-per-table', '200']);
  say(`failure-free run: ${opts.steps} steps, ${opts.servers} servers (R = 2), ${opts.workers} workers, BSP, on ${2 + opts.servers + opts.workers - 1} hosts`);
  const clean = await run('clean', false, deadline);
  say(`failure-free: ${clean.wallS.toFixed(1)} s; now with ${opts.partitions ? 'link cuts' : 'kill -9 and restarts'} every ${opts.killEvery} steps`);
  const chaos = await run('chaos', true, deadline);
  const a = await readTrainingCheckpoint(await resolveCheckpoint(clean.checkpoint), clean.config);
  const b = await readTrainingCheckpoint(await resolveCheckpoint(chaos.checkpoint), clean.config);
  const diff = Math.max(maxDiff(a, b), maxDiff(b, a));
  const n = chaos.faults.length;
  // How often a take-over had to run again (a source failed mid-way: src/server/handoff.ts), from the servers' logs.
  const serverLogs = readdirSync(chaos.logs).filter((f) => /-ps-\d+\.log$/.test(f)).map((f) => readFileSync(join(chaos.logs, f), 'utf8')).join('');
  const takeOverRetries = serverLogs.split('take-over incomplete').length - 1;
  const report = {
    kills: chaos.faults.filter((f) => f.kind === 'kill').length,
    partitions: chaos.faults.filter((f) => f.kind === 'partition').length,
    identical: diff === 0,
    maxAbsDiff: Number.isFinite(diff) ? diff : null,
    // Per fault: from the fault to the next step, less a normal step (the polling adds up to 0.2 s).
    takeOverRetries,
    secondsLostPerFailure: n ? Number((chaos.faults.reduce((a, f) => a + (f.lostS ?? 0), 0) / n).toFixed(2)) : 0,
    medianStepS: Number(chaos.medianStepS.toFixed(3)),
    // The two runs' wall times: on a loaded machine their difference is noise as much as faults.
    cleanWallS: Number(clean.wallS.toFixed(2)), chaosWallS: Number(chaos.wallS.toFixed(2)),
    steps: opts.steps, servers: opts.servers, workers: opts.workers, replicas: 2, seed: opts.seed,
    faults: chaos.faults.map(({ at: _at, ...f }) => f),
  };
  process.stdout.write(`\nchaos: ${report.kills} kills, ${report.partitions} partitions in ${opts.steps} BSP steps (R = 2)\n`);
  process.stdout.write('fault       server  at step  next step after (s)  lost (s)\n');
  for (const f of chaos.faults) {
    process.stdout.write(`${f.kind.padEnd(11)} ${String(f.server).padStart(6)}  ${String(f.atStep).padStart(7)}  ${(f.recoveredAfterS?.toFixed(2) ?? '-').padStart(19)}  ${(f.lostS?.toFixed(2) ?? '-').padStart(8)}\n`);
  }
  process.stdout.write(`lost per fault: ${report.secondsLostPerFailure} s (a normal step: ${report.medianStepS} s); wall time ${report.cleanWallS} s failure-free, ${report.chaosWallS} s with faults\n`);
  process.stdout.write(`final parameters: ${report.identical ? 'identical to the failure-free run' : `DIFFER from the failure-free run (max |diff| ${report.maxAbsDiff})`}\n`);
  if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
  if (report.identical) rmSync(work, { recursive: true, force: true });
  else process.stderr.write(`[chaos] both runs' checkpoints kept for inspection in ${work}/checkpoints (clean/, chaos/)\n`);
  process.exitCode = report.identical ? 0 : 1;
}

main().catch((e) => {
  process.stderr.write(`chaos: ${(e as Error).message}\n(work files kept in ${work})\n`);
  process.exit(1);
});
