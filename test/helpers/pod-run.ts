// One training run as the pods of a rendered TFJob on hosts of its own (network namespaces,
// test/helpers/netns.ts; pods, test/helpers/pods.ts), with a hook that sees the slowest worker's
// step every poll and may cut links or kill pods meanwhile. Used by `npm run chaos` and the
// partition tests (test/fault-partitions.test.ts). The namespaces and every process are removed
// when the run ends, fails or times out; each pod's output is kept in `<work>/logs-<name>/`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { DlrmTrainConfig } from './train.ts';
import { TestHosts } from './netns.ts';
import { PORT } from '../../src/launch/kubernetes.ts';
import { Pods, podHost, replicas, localPaths, type Pod, type PodType } from './pods.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROXY = fileURLToPath(new URL('./tcp-proxy.ts', import.meta.url));

/** `hybridps ARGS` on this machine, its stdout (throws with its stderr when it fails). */
export function hybridps(args: string[], timeoutMs = 240_000): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', cwd: ROOT, timeout: timeoutMs, env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
  if (r.status !== 0) throw new Error(`hybridps ${args[0]} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout;
}

/** What the hook sees: the hosts (host names `chief0`, `ps0`.., `worker0`..), the pods, the slowest worker's step. */
export interface LiveRun {
  hosts: TestHosts;
  pods: Pods;
  /** The server pods by index (a restarted one replaces its entry). */
  servers: Pod[];
  workers: Pod[];
  step: number;
  /** Starts server `i` again (after a kill). */
  restartServer(i: number): Pod;
}

export interface PodRunResult {
  wallS: number;
  checkpoint: string;
  config: DlrmTrainConfig;
  /** When the slowest worker completed each step (ms since the epoch), in order. */
  stepTimes: number[];
  /** Seconds from each worker's first step to its last (its own wallSec), the slowest worker's: training without start-up. */
  trainS: number;
  logs: string;
  /** What the proxy carried (with proxyDelayMs). */
  proxy?: ProxyStats;
}

export interface ProxyStats { delayMs: number; loss: number; rtoMs: number; connections: number; bytes: number; chunks: number; lostChunks: number }

/**
 * Renders `hybridps kubernetes` with `args` (the training flags; `--data /data/train.tsv` is added)
 * and runs its pods; `<work>/data/train.tsv` must exist. `poll` is awaited every 200 ms until the
 * workers exit (a fault it injects holds the polling, as a real one holds the cluster). Throws,
 * naming the workers' exit codes and their output, when a worker fails, or at `deadline`.
 */
export async function podRun(o: {
  work: string; name: string; args: string[]; deadline: number; poll?: (r: LiveRun) => Promise<void> | void;
  /** Put a TCP proxy (tcp-proxy.ts) on a host of its own between every two pods, adding this much latency each way. */
  proxyDelayMs?: number;
  /** With the proxy: the share of chunks it treats as lost, each held proxyRtoMs more (tcp-proxy.ts). */
  proxyLoss?: number;
  proxyRtoMs?: number;
  /** More arguments for the scheduler's `hybridps run` (e.g. `--heartbeat-ms`: members beat at its pace). */
  schedulerArgs?: string[];
}): Promise<PodRunResult> {
  const { work, name } = o;
  const [cm, job] = parseAllDocuments(hybridps(['kubernetes', 'samples/dlrm', ...o.args, '--data', '/data/train.tsv', '--image', 'local',
    '--checkpoint-dir', `/checkpoints/${name}`])).map((d) => d.toJS());
  job.spec.tfReplicaSpecs.Chief.template.spec.containers[0].args.push(...(o.schedulerArgs ?? []));
  const mounts: Record<string, string> = {
    '/etc/hybridps/secret': join(work, 'secret'), '/etc/hybridps/train': join(work, `train-${name}`), '/data': join(work, 'data'), '/checkpoints': join(work, 'checkpoints'),
  };
  for (const d of Object.values(mounts)) mkdirSync(d, { recursive: true });
  writeFileSync(join(mounts['/etc/hybridps/secret']!, 'secret'), 'pod-run-secret-0123456789');
  writeFileSync(join(mounts['/etc/hybridps/train']!, 'config.json'), localPaths(mounts)(cm.data['config.json']));

  const names: string[] = [];
  for (const t of ['chief', 'ps', 'worker'] as const) for (let i = 0; i < replicas(job, t); i++) names.push(`${t}${i}`);
  const proxied = o.proxyDelayMs !== undefined;
  const hosts = TestHosts.create(proxied ? [...names, 'proxy'] : names);
  const ip = new Map(names.map((n) => { const [, t, i] = /^([a-z]+)(\d+)$/.exec(n)!; return [podHost(job, t as PodType, Number(i)), hosts.host(n).ip] as const; }));
  let tfConfigIp: Map<string, string> | undefined;
  let proxy: ChildProcess | undefined;
  const proxyOut: string[] = [];
  if (proxied) {
    // One proxy address per pod (10.77.0.101, ...), each forwarding to that pod's own address.
    tfConfigIp = new Map([...ip.keys()].map((name, k) => [name, `10.77.0.${101 + k}`]));
    for (const addr of tfConfigIp.values()) hosts.addAddress('proxy', addr);
    const maps = [...ip].map(([name, addr]) => `${tfConfigIp!.get(name)}:${PORT}=${addr}:${PORT}`);
    proxy = spawn(hosts.exec('proxy')[0]!, [...hosts.exec('proxy').slice(1), process.execPath, '--import', 'tsx', PROXY, '--delay-ms', String(o.proxyDelayMs), '--loss', String(o.proxyLoss ?? 0), '--rto-ms', String(o.proxyRtoMs ?? 200), ...maps],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    proxy.stdout!.on('data', (b: Buffer) => proxyOut.push(b.toString()));
    for (const t0 = Date.now(); !proxyOut.join('').includes('ready'); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() - t0 > 30_000 || proxy.exitCode !== null) throw new Error(`the proxy did not start: ${proxyOut.join('')}`);
    }
  }
  const pods = new Pods(job, { ip, tfConfigIp, mounts, exec: (t, i) => hosts.exec(`${t}${i}`) });
  const logs = join(work, `logs-${name}`);
  const t0 = Date.now();
  const stepTimes: number[] = [];
  try {
    pods.start('chief', 0);
    const servers = pods.startAll('ps');
    const workers = pods.startAll('worker');
    const live: LiveRun = { hosts, pods, servers, workers, step: 0, restartServer: (i) => (servers[i] = pods.start('ps', i)) };
    const done = Promise.all(workers.map((w) => w.exit));
    let finished = false;
    void done.then(() => { finished = true; });
    while (!finished) {
      if (Date.now() > o.deadline) throw new Error(`the ${name} run did not finish in time (at step ${live.step}); pod logs in ${logs}`);
      await new Promise((r) => setTimeout(r, 200));
      const now = slowestStep(workers);
      if (now > live.step) stepTimes.push(Date.now());
      live.step = now;
      if (!finished) await o.poll?.(live);
    }
    const codes = await done;
    if (codes.some((c) => c !== 0)) {
      const out = workers.map((w, k) => `--- ${w.name}: exit ${codes[k]}\n${w.log.join('').slice(-2000)}`).join('\n');
      throw new Error(`the ${name} run failed: worker exit codes ${codes.join(', ')} (pod logs in ${logs})\n${out}`);
    }
    const wallS = (Date.now() - t0) / 1000;
    // The scheduler ends the job and the servers follow (job_ended); wait for them, bounded.
    await Promise.race([Promise.all(pods.all.map((p) => p.exit)), new Promise((r) => setTimeout(r, 30_000))]);
    let proxyStats: ProxyStats | undefined;
    if (proxy) {
      proxy.kill('SIGTERM');
      await new Promise((r) => proxy!.once('exit', r));
      proxyStats = JSON.parse(proxyOut.join('').split('\n').filter(Boolean).at(-1)!);
    }
    const trainS = Math.max(...workers.map((w) => {
      const s = [...w.log.join('').matchAll(/ progress rank=\d+ step=\d+ .*?wallSec=([\d.]+)/g)].map((m) => Number(m[1]));
      return s.length > 1 ? s.at(-1)! - s[0]! : 0;
    }));
    return { wallS, checkpoint: join(mounts['/checkpoints']!, name), config: JSON.parse(localPaths(mounts)(cm.data['config.json'])), stepTimes, trainS, logs, proxy: proxyStats };
  } finally {
    proxy?.kill('SIGKILL');
    pods.killAll();
    hosts.destroy();
    mkdirSync(logs, { recursive: true });
    pods.all.forEach((p, i) => writeFileSync(join(logs, `${String(i).padStart(2, '0')}-${p.name}.log`), p.log.join('')));
  }
}

/** The step the slowest of `workers` has finished, from their progress lines. */
export function slowestStep(workers: Pod[]): number {
  return Math.min(...workers.map((p) => { const m = [...p.log.join('').matchAll(/ progress rank=\d+ step=(\d+)/g)].at(-1); return m ? Number(m[1]) : 0; }));
}

/** The median time between consecutive steps (what a step costs without a fault), in seconds. */
export function medianStepS(stepTimes: number[]): number {
  const gaps = stepTimes.slice(1).map((t, i) => (t - stepTimes[i]!) / 1000).sort((x, y) => x - y);
  return gaps.length ? gaps[Math.floor(gaps.length / 2)]! : 0;
}
