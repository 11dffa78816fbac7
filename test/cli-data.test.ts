// `--data` as a user types it: repeatable, and the names it takes (a file twice, a glob that
// matches nothing, a missing file) fail at once with a message that names them, before any
// process starts or any data is generated. Real CLI processes; no training.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmp } from './helpers/train.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const dir = tmp();

function launch(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'launch', 'samples/dlrm', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
  return { code: r.status, stderr: r.stderr };
}

test('--data is repeatable, and a bad name fails at once', () => {
  const a = join(dir, 'day_0'), b = join(dir, 'day_1');
  writeFileSync(a, '0\n'); writeFileSync(b, '1\n');
  // Both values are kept: naming the same file through two flags is refused as such.
  let r = launch(['--data', a, '--data', `${dir}/day_*`]);
  assert.is(r.code, 1);
  assert.match(r.stderr, new RegExp(`${a} is named twice`));
  r = launch(['--data', a, '--data', join(dir, 'missing')]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /--data .*missing: no such file or directory/);
  r = launch(['--data', `${dir}/night_*`]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /no file in .* matches night_\*/);
});

test.run();
