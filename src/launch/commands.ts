// The launch commands, given what the command line parsed: `hybridps launch <sample>` (data ->
// run -> summary), `hybridps compare` (both modes on the same data, then the report) and
// `hybridps launch` without a sample (a cluster until Ctrl-C). With --json, people-facing output
// goes to stderr and stdout ends with one JSON object.
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { prepareTrainData, type TrainJob } from './train-job.ts';
import { runTraining, plannedSteps } from './train-run.ts';
import { formatSummary, summaryJson } from './summary.ts';
import { comparisonText, writeReport } from './compare-report.ts';
import type { TrainConfig } from '../train/config.ts';
import { LocalCluster } from './local-cluster.ts';
import { makeLocalTls } from './tls-certs.ts';

export async function trainCommand(job: TrainJob, o: { json?: boolean; keepGoing?: boolean; tls?: boolean }): Promise<void> {
  const out = o.json ? process.stderr : process.stdout;
  const cfg = await prepareTrainData(job, (s) => out.write(s + '\n'));
  const summary = await runTraining(cfg, { out, keepGoing: !!o.keepGoing, tls: !!o.tls });
  out.write(formatSummary(summary) + '\n');
  if (o.json) process.stdout.write(JSON.stringify(summaryJson(summary)) + '\n');
}

/** `jobs`: the hybrid job, then the pure-PS one (the same flags otherwise). */
export async function compareCommand(jobs: TrainJob[], o: { json?: boolean; report?: string }): Promise<void> {
  const out = o.json ? process.stderr : process.stdout;
  const runs = [];
  for (const job of jobs) {
    const cfg = withPeriodicEval(await prepareTrainData(job, (s) => out.write(s + '\n')), (s) => out.write(s + '\n'));
    const s = await runTraining(cfg, { out, label: cfg.mode });
    out.write(formatSummary(s) + '\n\n');
    runs.push(s);
  }
  const report = resolve(o.report ?? join('runs', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.html`));
  mkdirSync(resolve(report, '..'), { recursive: true });
  await writeReport(report, runs);
  out.write(comparisonText(runs) + '\n');
  out.write(`report: ${report}\n`);
  if (o.json) {
    const [hybrid, pureps] = runs.map(summaryJson);
    process.stdout.write(JSON.stringify({ hybrid, pureps, report }) + '\n');
  }
}

/** Held-out evaluations `compare` makes over a run when --eval-every is not given (the report plots them). */
export const COMPARE_EVALS = 10;

/**
 * compare evaluates periodically by default: about COMPARE_EVALS times over the run, each on
 * --eval-samples held-out samples (default 4096), so the cost stays bounded whatever the run's length.
 */
function withPeriodicEval(cfg: TrainConfig, say: (s: string) => void): TrainConfig {
  if (cfg.evalSteps > 0) return cfg;
  const steps = plannedSteps(cfg);
  if (steps === 0) {
    say(`[${cfg.mode}] note: the run's length is unknown (no --steps, no data sidecar): held-out metrics only at the end; --eval-every N evaluates every N steps`);
    return cfg;
  }
  const evalSteps = Math.max(1, Math.round(steps / COMPARE_EVALS));
  say(`[${cfg.mode}] evaluating every ${evalSteps === 1 ? 'step' : `${evalSteps} steps`} on ${cfg.evalSamples} held-out samples (--eval-every, --eval-samples), and at the end on all of them`);
  return { ...cfg, evalSteps };
}

export interface ClusterFlags { servers: number; replicas?: number; heartbeatMs?: number; json?: boolean; tls?: boolean }

/** A scheduler and servers as child processes until Ctrl-C (or SIGTERM), then every child stops. */
export async function clusterCommand(flags: ClusterFlags): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hybridps-'));
  let tls;
  try { tls = flags.tls ? makeLocalTls(join(dir, 'tls')) : undefined; } catch (e) { rmSync(dir, { recursive: true, force: true }); throw e; }
  const cluster = new LocalCluster({ servers: flags.servers, replicas: flags.replicas, heartbeatMs: flags.heartbeatMs, tls });
  await cluster.start();
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, cluster.secret, { mode: 0o600 });
  const info = {
    scheduler: cluster.schedulerUrl, secretFile, ...(tls ? { tls: { ca: tls.ca, cert: tls.roles.worker.cert, key: tls.roles.worker.key } } : {}),
    servers: cluster.children.filter((c) => c.role === 'server').map((c) => ({ nodeId: c.nodeId, url: c.url, pid: c.pid })),
  };
  if (flags.json) console.log(JSON.stringify(info));
  else {
    console.log(`hybridps cluster up: scheduler ${info.scheduler}, ${info.servers.length} server(s)`);
    for (const s of info.servers) console.log(`  ${s.nodeId}  ${s.url}  pid ${s.pid}`);
    console.log(`secret: ${secretFile}   (HYBRIDPS_SECRET_FILE=${secretFile} hybridps server --scheduler ${info.scheduler} adds a server)`);
    if (tls) console.log(`TLS: CA ${tls.ca}; a client's certificate: --tls-cert ${tls.roles.worker.cert} --tls-key ${tls.roles.worker.key} --tls-ca ${tls.ca}`);
    console.log('Ctrl-C stops everything.');
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
  console.log('stopped');
}
