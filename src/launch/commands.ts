// The launch commands, given what the command line parsed: `hybridps launch <sample>` (data ->
// run -> summary), `hybridps compare` (both modes on the same data, then the report) and
// `hybridps launch` without a sample (a cluster until Ctrl-C). With --json, people-facing output
// goes to stderr and stdout ends with one JSON object.
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { prepareTrainData, type TrainJob } from './train-job.ts';
import { runTraining } from './train-run.ts';
import { formatSummary, summaryJson } from './summary.ts';
import { comparisonTable, writeReport } from './compare-report.ts';
import { LocalCluster } from './local-cluster.ts';

export async function trainCommand(job: TrainJob, o: { json?: boolean; keepGoing?: boolean }): Promise<void> {
  const out = o.json ? process.stderr : process.stdout;
  const cfg = await prepareTrainData(job, (s) => out.write(s + '\n'));
  const summary = await runTraining(cfg, { out, keepGoing: !!o.keepGoing });
  out.write(formatSummary(summary) + '\n');
  if (o.json) process.stdout.write(JSON.stringify(summaryJson(summary)) + '\n');
}

/** `jobs`: the hybrid job, then the pure-PS one (the same flags otherwise). */
export async function compareCommand(jobs: TrainJob[], o: { json?: boolean; report?: string }): Promise<void> {
  const out = o.json ? process.stderr : process.stdout;
  const runs = [];
  for (const job of jobs) {
    const cfg = await prepareTrainData(job, (s) => out.write(s + '\n'));
    const s = await runTraining(cfg, { out, label: cfg.mode });
    out.write(formatSummary(s) + '\n\n');
    runs.push(s);
  }
  const report = resolve(o.report ?? join('runs', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.html`));
  mkdirSync(resolve(report, '..'), { recursive: true });
  await writeReport(report, runs);
  out.write(comparisonTable(runs) + '\n');
  out.write(`report: ${report}\n`);
  if (o.json) {
    const [hybrid, pureps] = runs.map(summaryJson);
    process.stdout.write(JSON.stringify({ hybrid, pureps, report }) + '\n');
  }
}

export interface ClusterFlags { servers: number; replicas?: number; heartbeatMs?: number; json?: boolean }

/** A scheduler and servers as child processes until Ctrl-C (or SIGTERM), then every child stops. */
export async function clusterCommand(flags: ClusterFlags): Promise<void> {
  const cluster = new LocalCluster({ servers: flags.servers, replicas: flags.replicas, heartbeatMs: flags.heartbeatMs });
  await cluster.start();
  const dir = mkdtempSync(join(tmpdir(), 'hybridps-'));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, cluster.secret, { mode: 0o600 });
  const info = {
    scheduler: cluster.schedulerUrl, secretFile,
    servers: cluster.children.filter((c) => c.role === 'server').map((c) => ({ nodeId: c.nodeId, url: c.url, pid: c.pid })),
  };
  if (flags.json) console.log(JSON.stringify(info));
  else {
    console.log(`hybridps cluster up: scheduler ${info.scheduler}, ${info.servers.length} server(s)`);
    for (const s of info.servers) console.log(`  ${s.nodeId}  ${s.url}  pid ${s.pid}`);
    console.log(`secret: ${secretFile}   (HYBRIDPS_SECRET_FILE=${secretFile} hybridps server --scheduler ${info.scheduler} adds a server)`);
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
