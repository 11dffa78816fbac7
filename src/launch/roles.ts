// Running one role in this process until a signal or, when a launcher started it, until the
// launcher goes away (the IPC channel closes), so no orphan outlives a killed launcher. The
// launcher hears from a role only through src/launch/child-protocol.ts.
import { Scheduler } from '../scheduler/scheduler.ts';
import { PsServer } from '../server/ps-server.ts';
import { limitsFromFlags, loadSecret, loadTls, UNENCRYPTED_WARNING, type LinkLimitFlags, type TlsCredentials, type TlsFiles } from '../transport/index.ts';
import { advertiseAddress, clusterEnvFromProcess, type ClusterEnv } from './cluster-env.ts';
import { ConfigError, exitCodeFor } from './exit-codes.ts';
import { waitForPeer } from './startup-wait.ts';
import { serveMetrics } from '../util/metrics-http.ts';
import { createLogger } from '../util/log.ts';
import { hasLauncher, tellLauncher, flushToLauncher, onLauncherMessage, onLauncherGone, type ReadyInfo } from './child-protocol.ts';
import type { WorkerEvent } from '../train/worker.ts';

export interface CommonRoleFlags extends LinkLimitFlags, TlsFiles {
  secret?: string; secretFile?: string; host?: string; port?: number; heartbeatMs?: number; metricsPort?: number;
  /** host:port announced to the scheduler instead of the listening address (or HYBRIDPS_ADVERTISE). */
  advertise?: string;
  /** How long a server or worker waits for the scheduler to resolve and listen (or HYBRIDPS_STARTUP_WAIT_S). */
  startupWaitS?: number;
}

/** TF_CONFIG / HYBRIDPS_* of this process; a malformed one is a configuration error (exit 2). */
export function orchestratorEnv(): ClusterEnv {
  try { return clusterEnvFromProcess(); } catch (e) { throw new ConfigError((e as Error).message); }
}

/** The address to announce instead of the listening one (--advertise, else HYBRIDPS_ADVERTISE); a malformed one is a ConfigError. */
function advertised(flags: CommonRoleFlags, env: ClusterEnv): string | undefined {
  try { return flags.advertise ? advertiseAddress(flags.advertise, '--advertise') : env.advertise; } catch (e) { throw new ConfigError((e as Error).message); }
}

/** The scheduler's address, once it resolves and accepts connections (see startup-wait.ts). */
async function reachableScheduler(flags: CommonRoleFlags & { scheduler?: string }, env: ClusterEnv, role: string): Promise<string> {
  const url = flags.scheduler ?? env.schedulerUrl;
  if (!url) throw new ConfigError(`the ${role} needs the scheduler: --scheduler ws://HOST:PORT, HYBRIDPS_SCHEDULER, or TF_CONFIG`);
  const fromEnv = process.env.HYBRIDPS_STARTUP_WAIT_S;
  const waitS = flags.startupWaitS ?? (fromEnv !== undefined ? Number(fromEnv) : undefined);
  if (waitS !== undefined && !(waitS >= 0)) throw new ConfigError(`--startup-wait-s / HYBRIDPS_STARTUP_WAIT_S must be a number of seconds >= 0, got ${fromEnv}`);
  const log = createLogger(role);
  await waitForPeer(url, { waitS, log: (l) => log.info(l) });
  return url;
}

/**
 * The role's TLS credentials (--tls-* or HYBRIDPS_TLS_*), logged either way; a file that cannot
 * work is a ConfigError. Plain links are a warning, except under a launcher, which says it once
 * for the whole local run instead of once per process.
 */
export function roleTls(flags: TlsFiles, role: string): TlsCredentials | undefined {
  let tls: TlsCredentials | undefined;
  try { tls = loadTls(flags); } catch (e) { throw new ConfigError((e as Error).message); }
  const log = createLogger(role);
  if (tls) log.info('links are TLS, both ends verified', { cert: tls.certFile, name: tls.name });
  else if (hasLauncher()) log.info(UNENCRYPTED_WARNING);
  else log.warn(UNENCRYPTED_WARNING);
  return tls;
}

/** Announces readiness to a launching parent (a no-op when no launcher started this process). */
export function announceReady(ready: ReadyInfo): void {
  tellLauncher({ kind: 'ready', ready });
}

export function exitWithParent(stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    const t = setTimeout(() => process.exit(1), 5000);
    t.unref();
    try { await stop(); } catch (e) { process.stderr.write(`error while stopping (${why}): ${(e as Error).message}\n`); }
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  onLauncherGone(() => void shutdown('parent gone'));
}

/** The scheduler's own flags: the ring, failure detection, and its barrier bounds (docs/wire.md, "Bounds"). */
export interface SchedulerFlags extends CommonRoleFlags {
  replicas?: number; vnodes?: number; heartbeatMisses?: number; maxBarrierNames?: number; maxBarriersPerWorker?: number;
  /** Exit 0 once this many workers have joined and all have gone (the job's end, for a TFJob chief or a Job). */
  jobWorkers?: number;
}

export async function runScheduler(flags: SchedulerFlags): Promise<void> {
  const env = orchestratorEnv();
  const s = await Scheduler.start({
    secret: loadSecret(flags), tls: roleTls(flags, 'scheduler'), host: flags.host ?? env.listenHost ?? '127.0.0.1', port: flags.port ?? env.listenPort ?? 0,
    replicas: flags.replicas, vnodes: flags.vnodes, heartbeatIntervalMs: flags.heartbeatMs, heartbeatMisses: flags.heartbeatMisses, limits: limitsFromFlags(flags),
    maxBarrierNames: flags.maxBarrierNames, maxBarriersPerWorker: flags.maxBarriersPerWorker,
    jobWorkers: flags.jobWorkers,
    onJobEnd: () => {
      createLogger('scheduler').info('the job has ended: every worker joined and has gone; exiting', { workers: flags.jobWorkers });
      void s.stop().finally(() => process.exit(0));
    },
  });
  const metrics = flags.metricsPort !== undefined
    ? await serveMetrics('scheduler', {
      counters: () => ({ ...s.stats }), gauges: () => ({ epoch: s.view().epoch, members: s.view().members.length }), status: () => s.status(),
    }, flags.metricsPort)
    : undefined;
  announceReady({ role: 'scheduler', url: s.url, metrics: metrics?.url, pid: process.pid });
  exitWithParent(() => s.stop());
}

export async function runServer(flags: CommonRoleFlags & { scheduler?: string; nodeId?: string; optimizerModule?: string[]; checkpointRoot?: string }): Promise<void> {
  const env = orchestratorEnv();
  const schedulerUrl = await reachableScheduler(flags, env, 'server');
  const s = await PsServer.start({
    secret: loadSecret(flags), tls: roleTls(flags, 'server'), schedulerUrl, host: flags.host ?? env.listenHost ?? '127.0.0.1', port: flags.port ?? env.listenPort ?? 0,
    advertise: advertised(flags, env),
    nodeId: flags.nodeId ?? (env.role === 'server' && env.index !== undefined ? `server-${env.index}` : undefined),
    maxFrameBytes: flags.maxFrameMb ? flags.maxFrameMb << 20 : undefined, heartbeatIntervalMs: flags.heartbeatMs,
    optimizerModules: flags.optimizerModule, checkpointRoot: flags.checkpointRoot, limits: limitsFromFlags(flags),
    onJobEnd: () => { void s.stop().finally(() => process.exit(0)); },
  });
  const metrics = flags.metricsPort !== undefined
    ? await serveMetrics('server', s.metricsSource(), flags.metricsPort)
    : undefined;
  announceReady({ role: 'server', url: s.url, nodeId: s.nodeId, metrics: metrics?.url, pid: process.pid });
  exitWithParent(() => s.stop());
}

/**
 * A training worker: the run's configuration (TrainConfig JSON) from --config or
 * HYBRIDPS_TRAIN_CONFIG, the scheduler from --scheduler, HYBRIDPS_SCHEDULER or TF_CONFIG. Exits 0
 * when training is done, 1 on an error (after a line on stderr saying what went wrong).
 */
export async function runWorker(flags: CommonRoleFlags & { scheduler?: string; nodeId?: string; config?: string }): Promise<void> {
  const env = orchestratorEnv();
  const cfg = await readTrainConfig(flags.config);
  const schedulerUrl = await reachableScheduler(flags, env, 'worker');
  const nodeId = flags.nodeId ?? (env.role === 'worker' && env.index !== undefined ? `worker-${env.index}` : `worker-${process.pid}`);
  // With --metrics-port, every event the worker reports also feeds its /metrics.
  const out = hasLauncher() ? tellLauncher : logReports(nodeId);
  let report = out, metricsUrl: string | undefined;
  if (flags.metricsPort !== undefined) {
    const { WorkerMetrics } = await import('./worker-metrics.ts');
    const wm = new WorkerMetrics();
    metricsUrl = (await serveMetrics('worker', wm.source(() => ({ role: 'worker', nodeId, pid: process.pid })), flags.metricsPort)).url;
    report = (e) => { wm.observe(e); out(e); };
  }
  announceReady({ role: 'worker', nodeId, pid: process.pid, metrics: metricsUrl });
  let stopRequested = false;
  exitWithParent(async () => { stopRequested = true; });
  const { runTrainWorker } = await import('../train/worker.ts');
  let code = 0;
  try {
    await runTrainWorker(cfg, {
      nodeId, schedulerUrl, secret: loadSecret(flags), tls: roleTls(flags, nodeId), host: flags.host ?? env.listenHost, port: flags.port ?? env.listenPort, advertise: advertised(flags, env),
      onCheckpointRequest: (listener) => onLauncherMessage((m) => { if (m.kind === 'checkpointAt') listener(m.step); }),
    }, report);
  } catch (e) {
    if (!stopRequested) process.stderr.write(`${nodeId}: ${(e as Error).stack ?? (e as Error).message}\n`);
    code = exitCodeFor(e);
  }
  await flushToLauncher(); // the result must reach the launcher before this process ends
  process.exit(code);
}

/** The worker's TrainConfig (--config FILE or HYBRIDPS_TRAIN_CONFIG), validated; any fault in it is a ConfigError. */
async function readTrainConfig(file: string | undefined) {
  const { readFileSync } = await import('node:fs');
  const { validateConfig } = await import('../train/config.ts');
  const where = file ?? 'HYBRIDPS_TRAIN_CONFIG';
  try {
    const text = file ? readFileSync(file, 'utf8') : process.env.HYBRIDPS_TRAIN_CONFIG;
    if (!text) throw new Error('missing: give --config FILE or HYBRIDPS_TRAIN_CONFIG (hybridps launch and hybridps kubernetes write it)');
    const cfg = JSON.parse(text);
    validateConfig(cfg);
    return cfg;
  } catch (e) {
    throw new ConfigError(`the training configuration (${where}): ${(e as Error).message}`);
  }
}

/** A worker with no launcher to tell (started by an orchestrator) logs what it would report. */
function logReports(nodeId: string): (e: WorkerEvent) => void {
  const log = createLogger(nodeId);
  return (e) => {
    if (e.kind === 'progress') log.info('progress', { ...e.progress });
    else if (e.kind === 'eval') log.info('eval', { ...e.eval });
    else if (e.kind === 'checkpoint') log.info('checkpoint', { step: e.step, dir: e.dir });
    else log.info('result', { ...e.result });
  };
}
