// A child process driven by JSON lines: one command on stdin, one answer on stdout. Shared by the
// multi-process tests (ring workers, trainers) so each test reads as a script of commands.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export class JsonProc {
  private readonly lines: string[] = [];
  private waiter: ((l: string) => void) | null = null;
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (!l.startsWith('{')) return; // not ours (a stray log line)
      if (this.waiter) { const w = this.waiter; this.waiter = null; w(l); } else this.lines.push(l);
    });
    this.exited = new Promise((r) => child.on('exit', (code, signal) => r(code ?? (signal ? -1 : null))));
  }

  /** `node [nodeArgs] --import tsx script [args]`, stdin and stdout piped, stderr inherited. */
  static start(script: string, env: Record<string, string> = {}, o: { args?: string[]; nodeArgs?: string[] } = {}): JsonProc {
    return new JsonProc(spawn(process.execPath, [...(o.nodeArgs ?? []), '--import', 'tsx', script, ...(o.args ?? [])], {
      env: { ...process.env, HYBRIDPS_LOG: process.env.HYBRIDPS_LOG ?? 'warn', ...env }, stdio: ['pipe', 'pipe', 'inherit'],
    }));
  }

  /** The next answer; rejects if the process exits first or the answer carries `error`. */
  async next<T = any>(timeoutMs = 60_000): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    let timer: NodeJS.Timeout | undefined;
    const line = this.lines.shift() ?? await Promise.race([
      new Promise<string>((r) => { this.waiter = r; }),
      this.exited.then((code) => { throw new Error(`child exited (${code}) before answering`); }),
      new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs); }),
    ]).finally(() => clearTimeout(timer));
    return JSON.parse(line) as T;
  }

  /** ask, but an answer carrying `error` rejects with it. */
  async call<T = any>(msg: object, timeoutMs?: number): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await this.ask<T & { error?: string }>(msg, timeoutMs);
    if (r.error) throw new Error(r.error);
    return r;
  }

  send(msg: object): void { this.child.stdin!.write(JSON.stringify(msg) + '\n'); }
  async ask<T = any>(msg: object, timeoutMs?: number): Promise<T> { this.send(msg); return this.next<T>(timeoutMs); } // eslint-disable-line @typescript-eslint/no-explicit-any
  kill(): void { this.child.kill('SIGKILL'); }
  async stop(): Promise<void> {
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(t);
  }
}

/** The child side: answers each JSON line with the handler's result (or `{ error }`), in order. */
export function serveCommands(handle: (msg: any) => Promise<object>): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  const rl = createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  rl.on('line', (l) => {
    chain = chain.then(async () => {
      let out: object;
      try { out = await handle(JSON.parse(l)); } catch (e) { out = { error: (e as Error).message, name: (e as Error).name }; }
      process.stdout.write(JSON.stringify(out) + '\n');
    });
  });
  rl.on('close', () => { void chain.then(() => process.exit(0)); });
}

export const toBase64 = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
export const fromBase64 = (s: string): Float32Array => { const b = Buffer.from(s, 'base64'); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
