// Runs every test/*.test.ts in its own Node process (uvu, through tsx; with --expose-gc for the
// tests that measure the heap) with a hard timeout, because Dawn keeps a process alive and
// lavapipe can hang at exit. Prints uvu's output and
// one closing line "N passed, N failed" for CI. Usage: node scripts/run-tests.mjs [filter...]
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);
const files = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
const perFileTimeoutMs = Number(process.env.TEST_TIMEOUT_MS ?? 300_000);
process.env.XDG_RUNTIME_DIR ??= '/tmp';
process.env.HYBRIDPS_LOG ??= 'warn'; // keep test output readable; failures still print

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join('test', file)], {
      cwd: root, env: { ...process.env, FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    const timer = setTimeout(() => { out += `\n[run-tests] ${file} timed out after ${perFileTimeoutMs} ms\n`; child.kill('SIGKILL'); }, perFileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
      // A file that crashed, timed out or ran nothing counts as one failure.
      const broken = code !== 0 || total === 0;
      const failed = Math.max(total - passed - skipped, broken && total === passed ? 1 : 0);
      resolve({ file, passed, failed, skipped, ms: Date.now() - started, code, signal });
    });
  });
}

const results = [];
for (const f of files) {
  console.log(`\n── ${f}`);
  results.push(await runFile(f));
}
console.log('\nfile'.padEnd(40), 'passed failed   seconds');
for (const r of results) {
  console.log(r.file.padEnd(39), String(r.passed).padStart(6), String(r.failed).padStart(6), (r.ms / 1000).toFixed(1).padStart(9), r.code !== 0 ? ` (exit ${r.code ?? r.signal})` : '');
}
const passed = results.reduce((a, r) => a + r.passed, 0);
const failed = results.reduce((a, r) => a + r.failed, 0);
const skipped = results.reduce((a, r) => a + r.skipped, 0);
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || results.length === 0 ? 1 : 0);
