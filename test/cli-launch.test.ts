// `hybridps launch` and the roles as real processes: the demo runs end to end, Ctrl-C stops
// every child, and a launcher killed with SIGKILL leaves no orphan behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';

const MAIN = 'src/cli/main.ts';

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (cond()) return true; await new Promise((r) => setTimeout(r, 50)); }
  return cond();
}

async function startLaunch(): Promise<{ proc: ReturnType<typeof spawn>; pids: number[] }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, 'launch', '--servers', '2', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const line: string = await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (c) => reject(new Error(`launch exited ${c}`)));
  });
  const info = JSON.parse(line);
  const pids = info.servers.map((s: { pid: number }) => s.pid);
  // The scheduler's pid: the launcher's other child.
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(proc.pid)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  return { proc, pids: [...new Set([...pids, ...children])] };
}

test('demo: push/pull through a local cluster of real processes', () => {
  // The timeout is a hang guard: 3 processes start under tsx, slow on a busy machine.
  const out = execFileSync(process.execPath, ['--import', 'tsx', MAIN, 'demo', '--servers', '2', '--rounds', '3', '--keys', '512', '--json'], { encoding: 'utf8', timeout: 240_000 });
  const summary = JSON.parse(out.trim().split('\n').at(-1)!);
  assert.is(summary.servers, 2);
  assert.ok(summary.rowsStored > 0 && summary.rowsStored <= 3 * 512);
  assert.ok(summary.pullRowsPerSec > 0);
});

test('Ctrl-C stops every child', async () => {
  const { proc, pids } = await startLaunch();
  assert.ok(pids.length >= 3, `scheduler + 2 servers, got ${pids}`);
  proc.kill('SIGINT');
  await new Promise((r) => proc.once('exit', r));
  assert.ok(await until(() => pids.every((p) => !alive(p)), 30_000), `still alive: ${pids.filter(alive)}`);
});

test('a launcher killed with SIGKILL leaves no orphan', async () => {
  const { proc, pids } = await startLaunch();
  proc.kill('SIGKILL');
  assert.ok(await until(() => pids.every((p) => !alive(p)), 30_000), `orphans: ${pids.filter(alive)}`);
});

test('a role without a secret explains how to give one', () => {
  const env = { ...process.env };
  delete env.HYBRIDPS_SECRET; delete env.HYBRIDPS_SECRET_FILE;
  let err = '';
  try { execFileSync(process.execPath, ['--import', 'tsx', MAIN, 'scheduler'], { env, encoding: 'utf8', stdio: 'pipe' }); } catch (e) { err = String((e as { stderr: string }).stderr); }
  assert.match(err, /no cluster secret.*--secret-file/);
});

test.run();
