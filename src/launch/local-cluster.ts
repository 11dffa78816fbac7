// Starts a scheduler and servers (and later workers) as child processes on this machine, waits
// for each to report ready, and stops them all together: on stop(), on Ctrl-C, on an error, or
// when this process dies (children exit when their stdin closes).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { generateSecret } from '../transport/index.ts';

const MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

export interface ChildInfo { role: string; url?: string; nodeId?: string; pid: number; proc: ChildProcess }

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
    return { ...process.env, ...this.opts.env, HYBRIDPS_SECRET: this.secret, HYBRIDPS_EXIT_WITH_PARENT: '1' };
  }

  /**
   * Spawns `hybridps <args>` and resolves when it prints its ready line. Later stdout lines go to
   * `onStdout` (worker progress), or to the log.
   */
  spawnRole(role: string, args: string[], timeoutMs = 30_000, onStdout?: (line: string) => void): Promise<ChildInfo> {
    const proc = spawn(process.execPath, [...(this.opts.nodeArgs ?? []), '--import', 'tsx', MAIN, ...args], { env: this.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const log = this.opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
    createInterface({ input: proc.stderr! }).on('line', (l) => log(l));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`${role} did not become ready in ${timeoutMs} ms`)); }, timeoutMs);
      proc.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${role} exited during start-up (${code ?? sig})`)); });
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const m = /^HYBRIDPS_READY (.*)$/.exec(line);
        if (!m) { (onStdout ?? log)(line); return; }
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        const info: ChildInfo = { ...JSON.parse(m[1]!), proc };
        this.children.push(info);
        proc.once('exit', (code, sig) => {
          if (!this.stopping) log(`[launch] ${info.role} ${info.nodeId ?? ''} (pid ${info.pid}) exited (${code ?? sig})`);
        });
        resolve(info);
      });
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

  /** SIGTERM everyone, SIGKILL what is left after a grace period. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    const alive = this.children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
    await Promise.all(alive.map((c) => new Promise<void>((resolve) => {
      const t = setTimeout(() => { c.proc.kill('SIGKILL'); }, graceMs);
      c.proc.once('exit', () => { clearTimeout(t); resolve(); });
      c.proc.kill('SIGTERM');
    })));
  }
}
