// The GPU-box recipe, proved here on lavapipe (scripts/gpu-box/prove-local.sh): pack.sh's .devbox
// unpacked into an empty directory outside the repository, with no node_modules above it and
// `node`/`npm`/`npx`/`tsx` on PATH replaced by failing stubs, runs with the carried node only:
// the checks come first, a software adapter is refused without --software-ok, and with it the
// kernels benchmark (small sizes) and the full step run and leave their JSON. No GPU is needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const box = mkdtempSync(join(tmpdir(), 'hybridps-prove-'));
process.on('exit', (code) => {
  if (code === 0 && !process.exitCode) rmSync(box, { recursive: true, force: true });
  else process.stderr.write(`kept ${box} for inspection\n`);
});
const json = (f: string) => JSON.parse(readFileSync(join(box, f), 'utf8'));

let log = '';
test('prove-local.sh: pack, unpack outside the repo, refuse lavapipe, then run with --software-ok', () => {
  // XZ_LEVEL=1: a fresh checkout compresses node in ~15 s instead of minutes (a kept .devbox/node.xz is reused).
  const r = spawnSync('bash', [join(repo, 'scripts/gpu-box/prove-local.sh'), box], {
    cwd: repo, encoding: 'utf8', timeout: 280_000, env: { ...process.env, XZ_LEVEL: process.env.XZ_LEVEL ?? '1', HYBRIDPS_LOG: 'warn' },
  });
  log = r.stdout + r.stderr;
  assert.is(r.status, 0, log.slice(-4000));
  assert.match(log, /\[prove\] 1\. software adapter refused/);
  assert.match(log, /\[prove\] 3\. side-by-side ran/);
  assert.match(log, /\[prove\] 4\. bundled launch trained 3 steps/);
});

test('the checks are printed before anything runs, in order', () => {
  const run = readFileSync(join(box, 'out', 'run.log'), 'utf8');
  let at = -1;
  for (const mark of ['[box] glibc: glibc 2.', '[box] libstdc++:', '[box] libvulkan.so.1: ', '[box] Vulkan ICD: ', '[box] nvidia-smi -L: ', '[box] adapter: {', '[box] ---- kernels', '[box] ---- step', '[box] side-by-side: ']) {
    const i = run.indexOf(mark);
    assert.ok(i > at, `"${mark}" missing or out of order in run.log`);
    at = i;
  }
});

test('only carried things ran: the carried node, webgpu and Vulkan loader from the unpack directory', () => {
  const env = json('out/env.json');
  const dir: string = env.boxDir;
  assert.ok(dir.startsWith('/tmp/hybridps-box.'), dir);
  assert.is(env.adapter.execPath, join(dir, 'node'));
  assert.is(env.adapter.webgpu, join(dir, 'app', 'node_modules', 'webgpu', 'index.js'));
  assert.ok(env.libvulkan.startsWith(join(dir, 'vulkan')), env.libvulkan);
  assert.ok(env.adapter.software && env.softwareOk, JSON.stringify(env.adapter));
  assert.ok(env.bundle.commit && env.bundle.entries.kernels.bytes > 0);
});

test('without --software-ok the software adapter is refused before any benchmark', () => {
  const env = json('out-refuse/env.json');
  assert.match(env.adapter.refused, /software adapter/);
  assert.not.ok(existsSync(join(box, 'out-refuse', 'kernels.json')));
  assert.match(readFileSync(join(box, 'out-refuse', 'run.log'), 'utf8'), /REFUSED: no GPU numbers from this adapter/);
});

test('the results: kernels, the step, and the side-by-side marked as CPU numbers', () => {
  const k = json('out/kernels.json');
  assert.match(k.adapter, /llvmpipe/);
  assert.ok(k.kernels.length > 0 && k.kernels.every((c: { ms: number }) => c.ms > 0), JSON.stringify(k.kernels));
  const s = json('out/step.json');
  assert.is(s.batch, 512);
  assert.ok(s.computeMs > 0 && s.pullMs > 0 && s.pushMs > 0, JSON.stringify(s));
  const side = json('out/step-vs-torch.json');
  assert.equal(side.errors, []);
  assert.match(side.numbers, /^CPU \(software adapter/);
  assert.ok(side.hybridpsStepMs > 0 && side.kernels.cases === k.kernels.length, JSON.stringify(side));
});

test.run();
