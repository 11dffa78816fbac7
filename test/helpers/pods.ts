// The pods of a rendered TFJob (`hybridps kubernetes`) as real processes: each pod's container
// command, arguments and env from the manifest, its TF_CONFIG as the training operator would
// inject it with the pods' DNS names mapped to addresses of the test's choosing (loopback
// addresses, or network namespaces' addresses with `exec` prefixing `ip netns exec NS`), and its
// volume mounts mapped to local directories. Used by the Kubernetes and the separate-host tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { operatorTfConfig } from '../../src/launch/kubernetes.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
type Obj = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export type PodType = 'chief' | 'ps' | 'worker';
const SPEC_OF: Record<PodType, string> = { chief: 'Chief', ps: 'PS', worker: 'Worker' };

export interface Pod { name: string; type: PodType; index: number; ip: string; proc: ChildProcess; exit: Promise<number | null>; log: string[] }

/** The DNS name the operator gives replica `index` of `type` (what TF_CONFIG lists). */
export function podHost(job: Obj, type: PodType, index: number): string {
  return `${job.metadata.name}-${type}-${index}.${job.metadata.namespace}.svc`;
}

export function replicas(job: Obj, type: PodType): number {
  return job.spec.tfReplicaSpecs[SPEC_OF[type]].replicas;
}

/** Rewrites mounted paths (`/data/x`) to the local directories standing in for the mounts. */
export function localPaths(mounts: Record<string, string>): (s: string) => string {
  return (s) => mounts[s] ?? Object.entries(mounts).reduce((t, [from, to]) => t.replaceAll(`${from}/`, `${to}/`), s);
}

export class Pods {
  readonly all: Pod[] = [];
  private readonly local: (s: string) => string;
  constructor(private readonly job: Obj, private readonly o: {
    /** Address of each pod, by its DNS name (podHost). */
    ip: Map<string, string>;
    /**
     * What TF_CONFIG names map to, when not `ip`: a proxy's addresses, one per pod, with the pods
     * between them. Each pod still listens on its own address and announces its proxy address
     * (HYBRIDPS_ADVERTISE), so every link between pods runs through the proxy.
     */
    tfConfigIp?: Map<string, string>;
    mounts: Record<string, string>;
    /** Command prefix per pod (e.g. ['ip', 'netns', 'exec', ns]). */
    exec?: (type: PodType, index: number) => string[];
    env?: Record<string, string>;
  }) {
    this.local = localPaths(o.mounts);
  }

  start(type: PodType, index: number): Pod {
    const c = this.job.spec.tfReplicaSpecs[SPEC_OF[type]].template.spec.containers[0];
    const ip = this.o.ip.get(podHost(this.job, type, index));
    if (!ip) throw new Error(`no address for ${podHost(this.job, type, index)}`);
    const args: string[] = c.args.map((a: string) => this.local(a.replace('$(POD_IP)', ip)));
    const named = this.o.tfConfigIp ?? this.o.ip;
    const tfConfig = [...named].reduce((t, [name, addr]) => t.replaceAll(name, addr), operatorTfConfig(this.job, type, index));
    const env: Record<string, string> = { HYBRIDPS_LOG: 'info', ...this.o.env, TF_CONFIG: tfConfig, POD_IP: ip };
    if (this.o.tfConfigIp) env.HYBRIDPS_ADVERTISE = `${this.o.tfConfigIp.get(podHost(this.job, type, index))}:${args[args.indexOf('--port') + 1]}`;
    for (const e of c.env) if (e.value !== undefined) env[e.name] = e.value;
    const prefix = this.o.exec?.(type, index) ?? [];
    const argv = [...prefix, process.execPath, '--import', 'tsx', MAIN, ...args];
    const proc = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const pod: Pod = { name: `${type}-${index}`, type, index, ip, proc, log: [], exit: new Promise((r) => proc.on('exit', (code) => r(code))) };
    for (const s of [proc.stdout!, proc.stderr!]) s.on('data', (b: Buffer) => pod.log.push(b.toString()));
    this.all.push(pod);
    return pod;
  }

  /** Every replica of `type`. */
  startAll(type: PodType): Pod[] {
    return Array.from({ length: replicas(this.job, type) }, (_, i) => this.start(type, i));
  }

  /** Resolves once `pod`'s output contains `text`; fails after `ms` with its log. */
  async waitForLog(pod: Pod, text: string | RegExp, ms = 60_000): Promise<void> {
    const has = () => { const l = pod.log.join(''); return typeof text === 'string' ? l.includes(text) : text.test(l); };
    for (const t0 = Date.now(); !has(); await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() - t0 > ms) throw new Error(`${pod.name} never logged ${text} within ${ms} ms:\n${pod.log.join('').slice(-3000)}`);
    }
  }

  /** Every pod's exit code, with a report of their last output (for assertion messages). */
  async exits(): Promise<{ codes: (number | null)[]; report: string }> {
    const codes = await Promise.all(this.all.map((p) => p.exit));
    return { codes, report: this.all.map((p, k) => `--- ${p.name} (${p.ip}): exit ${codes[k]}\n${p.log.join('').slice(-3000)}`).join('\n') };
  }

  killAll(): void {
    for (const p of this.all) p.proc.kill('SIGKILL');
  }
}
