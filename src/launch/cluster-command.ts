// `hybridps launch`: a scheduler and N servers (and, with a model, W workers) as child processes
// on this machine. Without a model it keeps the cluster up until Ctrl-C and prints how to reach it.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from './local-cluster.ts';

export interface LaunchFlags { servers: number; replicas?: number; heartbeatMs?: number; json?: boolean }

export async function launchCluster(flags: LaunchFlags): Promise<LocalCluster> {
  const cluster = new LocalCluster({ servers: flags.servers, replicas: flags.replicas, heartbeatMs: flags.heartbeatMs });
  await cluster.start();
  return cluster;
}

/** Starts the cluster and waits for Ctrl-C (or SIGTERM), then stops every child. */
export async function launchAndWait(flags: LaunchFlags): Promise<void> {
  const cluster = await launchCluster(flags);
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
