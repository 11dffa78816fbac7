// Starts a scheduler and servers (and later workers) as child processes on this machine, waits
// for each to report ready, and stops them all together: on stop(), on Ctrl-C, on an error, or
// when this process dies (children exit when their channel to it closes). Children speak
// src/launch/child-protocol.ts; their stdout and stderr are log lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { generateSecret } from '../transport/index.ts';
import { cliNodeArgs, ROLE_V8_FLAGS } from '../util/package-files.ts';
import { childSpawnOptions, onChildMessage, ProtocolError, type ReadyInfo } from './child-protocol.ts';
import type { WorkerEvent } from '../train/worker.ts';
import { ROLE_KINDS, tlsEnv, type LocalTls, type RoleKind } from './tls-certs.ts';

export interface ChildInfo extends ReadyInfo { proc: ChildProcess }

export interface SpawnRoleOptions {
  /** How long the child has to report ready (default 30 s). */
  timeoutMs?: number;
  /** Messages after the ready one (a worker's progress, evaluations, checkpoints, result). */
  onMessage?: (m: WorkerEvent) => void;
  /** A malformed message after the ready one (default: an ERROR log line). */
  onProtocolError?: (e: ProtocolError) => void;
  /** The child's stdout lines (default: the log). */
  onStdout?: (line: string) => void;
}

export interface LocalClusterOptions {
  servers: number;
  secret?: string;
  replicas?: number;
  heartbeatMs?: number;
  extraServerArgs?: string[];
  /** Where the children's log lines go (default: this process's stderr). */
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Extra Node flags for every child (e.g. --max-old-space-size=8192, --cpu-prof). */
  nodeArgs?: string[];
  /** Mutual TLS on every link: each child gets its role kind's certificate (`launch --tls`). */
  tls?: LocalTls;
}

export class LocalCluster {
  readonly children: ChildInfo[] = [];
  schedulerUrl = '';
  readonly secret: string;
  private stopping = false;
  private onSignal = () => {
    process.stderr.write('\n[launch] interrupted: stopping every process\n');
    void this.stop().then(() => process.exit(130));
  };

  constructor(private readonly opts: LocalClusterOptions) {
    this.secret = opts.secret ?? generateSecret();
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.opts.env, HYBRIDPS_SECRET: this.secret };
  }

  /** Spawns `hybridps <args>` and resolves when it reports ready. */
  spawnRole(role: string, args: string[], o: SpawnRoleOptions = {}): Promise<ChildInfo> {
    const timeoutMs = o.timeoutMs ?? 30_000;
    const kind = role.split(' ')[0] as RoleKind; // 'scheduler', 'server 1', 'worker 0'
    const env = this.opts.tls && ROLE_KINDS.includes(kind) ? { ...this.env, ...tlsEnv(this.opts.tls, kind) } : this.env;
    const proc = spawn(process.execPath, [...ROLE_V8_FLAGS, ...(this.opts.nodeArgs ?? []), ...cliNodeArgs(), ...args], childSpawnOptions(env));
    const log = this.opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
    createInterface({ input: proc.stderr! }).on('line', (l) => log(l));
    createInterface({ input: proc.stdout! }).on('line', (l) => (o.onStdout ?? log)(l));
    return new Promise((resolve, reject) => {
      let info: ChildInfo | undefined;
      const failStart = (why: string) => { clearTimeout(timer); proc.removeAllListeners('exit'); proc.kill('SIGKILL'); reject(new Error(why)); };
      const timer = setTimeout(() => failStart(`${role} did not become ready in ${timeoutMs} ms`), timeoutMs);
      proc.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${role} exited during start-up (${code ?? sig})`)); });
      const protocolError = o.onProtocolError ?? ((e: ProtocolError) => log(`[launch] ERROR ${role}: ${e.message}`));
      onChildMessage(proc, (m) => {
        if (info) {
          if (m.kind === 'ready' || !o.onMessage) protocolError(new ProtocolError('out-of-order', `${role} sent an unexpected ${m.kind} message`));
          else o.onMessage(m);
          return;
        }
        if (m.kind !== 'ready') { failStart(`${role} sent ${m.kind} before ready`); return; }
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        info = { ...m.ready, proc };
        const ready = info;
        this.children.push(ready);
        proc.once('exit', (code, sig) => {
          if (!this.stopping) log(`[launch] ${ready.role} ${ready.nodeId ?? ''} (pid ${ready.pid}) exited (${code ?? sig})`);
        });
        resolve(ready);
      }, (e) => (info ? protocolError(e) : failStart(`${role}: ${e.message}`)));
    });
  }

  async start(): Promise<void> {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    try {
      const sched = await this.spawnRole('scheduler', ['scheduler', '--port', '0',
        ...(this.opts.replicas ? ['--replicas', String(this.opts.replicas)] : []),
        ...(this.opts.heartbeatMs ? ['--heartbeat-ms', String(this.opts.heartbeatMs)] : [])]);
      this.schedulerUrl = sched.url!;
      await Promise.all(Array.from({ length: this.opts.servers }, (_, i) => this.startServer(i)));
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  startServer(index: number): Promise<ChildInfo> {
    return this.spawnRole(`server ${index}`, ['server', '--scheduler', this.schedulerUrl, '--node-id', `server-${index}`, '--port', '0',
      ...(this.opts.heartbeatMs ? ['--heartbeat-ms', String(this.opts.heartbeatMs)] : []), ...(this.opts.extraServerArgs ?? [])]);
  }

  /**
   * SIGTERM everyone, SIGKILL what is left after a grace period: the servers and workers first,
   * then the scheduler, so that each member's leave reaches a scheduler still there to hear it
   * (stopped together, the scheduler logged every server of a finished run as a lost peer).
   */
  async stop(graceMs = 5000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    const alive = this.children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
    const term = (cs: ChildInfo[]) => Promise.all(cs.map((c) => new Promise<void>((resolve) => {
      const t = setTimeout(() => { c.proc.kill('SIGKILL'); }, graceMs);
      c.proc.once('exit', () => { clearTimeout(t); resolve(); });
      c.proc.kill('SIGTERM');
    })));
    await term(alive.filter((c) => c.role !== 'scheduler'));
    await term(alive.filter((c) => c.role === 'scheduler'));
  }
}
