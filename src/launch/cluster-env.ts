// Cluster settings from the conventions orchestrators already use. TF_CONFIG (TensorFlow's
// ParameterServerStrategy) maps as: chief -> scheduler, ps -> server, worker -> worker; the
// task's index picks this process's address. HYBRIDPS_* variables and flags override it. This is
// an orchestrator's input format, read here and nowhere else (not our launcher's protocol).
import { isOneOf } from '../wire/vocabulary.ts';

/** The roles a process can run (`hybridps <role>`). */
export const ROLE_NAMES = ['scheduler', 'server', 'worker'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

export interface ClusterEnv {
  role?: RoleName;
  index?: number;
  /** ws URL of the scheduler. */
  schedulerUrl?: string;
  /** host:port this process should listen on. */
  listenHost?: string;
  listenPort?: number;
  /** HYBRIDPS_ADVERTISE: the host:port peers reach this process at, when not where it listens (a proxy in between). */
  advertise?: string;
  servers?: number;
  workers?: number;
}

const ROLE_OF_TF_TYPE: Record<string, ClusterEnv['role']> = { chief: 'scheduler', ps: 'server', worker: 'worker', evaluator: undefined };

function splitHostPort(addr: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(addr.replace(/^wss?:\/\//, ''));
  if (!m) throw new Error(`${what}: expected host:port, got "${addr}"`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** An address to announce (`--advertise`, HYBRIDPS_ADVERTISE) as host:port, checked; `what` names its source in the error. */
export function advertiseAddress(addr: string, what: string): string {
  const hp = splitHostPort(addr, what);
  return `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
}

export function parseTfConfig(json: string): ClusterEnv {
  let cfg: { cluster?: Record<string, string[]>; task?: { type?: string; index?: number } };
  try { cfg = JSON.parse(json); } catch (e) { throw new Error(`TF_CONFIG is not valid JSON: ${(e as Error).message}`); }
  const cluster = cfg.cluster ?? {};
  const chief = cluster.chief ?? cluster.scheduler;
  if (!chief?.length) throw new Error('TF_CONFIG: cluster.chief (the scheduler) is missing');
  const sched = splitHostPort(chief[0]!, 'TF_CONFIG cluster.chief[0]');
  const env: ClusterEnv = {
    schedulerUrl: `ws://${sched.host}:${sched.port}`,
    servers: cluster.ps?.length ?? 0,
    workers: cluster.worker?.length ?? 0,
  };
  const type = cfg.task?.type;
  if (type) {
    if (!(type in ROLE_OF_TF_TYPE)) throw new Error(`TF_CONFIG: task.type "${type}" is not one of chief, ps, worker`);
    env.role = ROLE_OF_TF_TYPE[type];
    env.index = cfg.task?.index ?? 0;
    const list = type === 'chief' ? chief : cluster[type];
    const own = list?.[env.index];
    if (!own) throw new Error(`TF_CONFIG: no address for ${type}[${env.index}]`);
    const hp = splitHostPort(own, `TF_CONFIG cluster.${type}[${env.index}]`);
    env.listenHost = hp.host;
    env.listenPort = hp.port;
  }
  return env;
}

/** TF_CONFIG first, then HYBRIDPS_ROLE / HYBRIDPS_SCHEDULER / HYBRIDPS_INDEX on top. */
export function clusterEnvFromProcess(env: NodeJS.ProcessEnv = process.env): ClusterEnv {
  const out: ClusterEnv = env.TF_CONFIG ? parseTfConfig(env.TF_CONFIG) : {};
  if (env.HYBRIDPS_ROLE) {
    if (!isOneOf(ROLE_NAMES, env.HYBRIDPS_ROLE)) throw new Error(`HYBRIDPS_ROLE must be scheduler, server or worker, got ${env.HYBRIDPS_ROLE}`);
    out.role = env.HYBRIDPS_ROLE;
  }
  if (env.HYBRIDPS_SCHEDULER) out.schedulerUrl = env.HYBRIDPS_SCHEDULER.startsWith('ws') ? env.HYBRIDPS_SCHEDULER : `ws://${env.HYBRIDPS_SCHEDULER}`;
  if (env.HYBRIDPS_INDEX) out.index = Number(env.HYBRIDPS_INDEX);
  if (env.HYBRIDPS_ADVERTISE) out.advertise = advertiseAddress(env.HYBRIDPS_ADVERTISE, 'HYBRIDPS_ADVERTISE');
  return out;
}
