// The npm package as a new user gets it: `npm pack` (which builds dist/), then `npm install` of the
// tarball into an empty project outside the repository, with nothing of the checkout on any
// module path. There `npx hybridps --help` and a short `launch` run from the compiled code (no
// tsx: it is a dev dependency), and a script importing the public API type-checks against the
// shipped .d.ts (strict, skipLibCheck off) and then runs: one DLRM worker step on the GPU through
// 'hybridps', so the shaders are found relative to the compiled code. A model directory outside
// the repository (its module written in TypeScript against the package's types, compiled to
// model.js) launches through the compiled CLI like a sample of the repo's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'hybridps-pkg-'));
const project = join(work, 'project');
process.on('exit', (code) => {
  if (code === 0 && !process.exitCode) rmSync(work, { recursive: true, force: true });
  else process.stderr.write(`kept ${work} for inspection\n`);
});

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    cwd: project, encoding: 'utf8', timeout: 120_000,
    // Nothing from the checkout: no tsx loader, no module path into the repo.
    env: { ...process.env, NODE_OPTIONS: '', NODE_PATH: '', HYBRIDPS_LOG: 'warn', npm_config_update_notifier: 'false' },
    ...opts,
  });
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) + (r.error ? `\n${r.error}` : '') };
}
const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!);

test('npm pack builds the package and npm install puts it into an empty project', () => {
  const pack = run('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: repo, timeout: 180_000 });
  assert.is(pack.code, 0, pack.stderr);
  const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz, `no tarball in ${work}: ${pack.stdout}`);
  // No node_modules on the path from the project up to /, so only what npm installs is found.
  for (let d = work; dirname(d) !== d; d = dirname(d)) assert.not.ok(existsSync(join(d, 'node_modules')), `${d}/node_modules exists`);
  rmSync(project, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'hybridps-user', private: true, type: 'module' }));
  const inst = run('npm', ['install', join(work, tgz!), '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error']);
  assert.is(inst.code, 0, inst.stderr);
  const pkg = join(project, 'node_modules', 'hybridps');
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'shaders/linear_fwd.wgsl', 'samples/dlrm/sample.json', 'bin/hybridps.js']) {
    assert.ok(existsSync(join(pkg, f)), `package lacks ${f}`);
  }
  assert.not.ok(existsSync(join(pkg, 'src')), 'the package ships compiled code, not src/');
  assert.not.ok(existsSync(join(project, 'node_modules', 'tsx')), 'tsx is a dev dependency and must not be installed');
});

test('npx hybridps --help', () => {
  const r = run('npx', ['hybridps', '--help']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /launch \[options\] \[sample\]/);
});

test('npx hybridps launch: a short training run from the compiled CLI (children included)', () => {
  const gen = run('npx', ['hybridps', 'gen-data', '--out', 'data.tsv', '--samples', '1500', '--seed', '5', '--rows-per-table', '50', '--json']);
  assert.is(gen.code, 0, gen.stderr);
  const tiny = JSON.stringify({ numTables: 26, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 50 });
  const r = run('npx', ['hybridps', 'launch', 'node_modules/hybridps/samples/dlrm', '--data', 'data.tsv', '--model', tiny, '--rows-per-table', '50',
    '--workers', '1', '--servers', '1', '--batch', '32', '--steps', '3', '--eval-samples', '100', '--json']);
  assert.is(r.code, 0, r.stderr);
  const j = lastJson(r.stdout);
  assert.equal([j.mode, j.workers, j.servers, j.steps], ['hybrid', 1, 1, 3]);
  assert.ok(Number.isFinite(j.logloss) && j.bytes.pull > 0 && j.bytes.push > 0, r.stdout);
});

const USER_SCRIPT = `
import {
  Scheduler, PsServer, PSClient, generateSecret, acquireGpu, ModelRunner, WorkerStep, psTableSpecs, dlrmSpec,
  DEFAULT_SHADER_DIR, type DlrmConfig, type ModelSpec, type WorkerBatch, type Gpu,
} from 'hybridps';
import { RingAllreduce } from 'hybridps/allreduce';
import { readSafetensors, writeSafetensors } from 'hybridps/checkpoint';

const cfg: DlrmConfig = { numDense: 13, numTables: 3, dim: 4, bottom: [13, 8, 4], top: [6, 1], rowsPerTable: 40 };
const spec: ModelSpec = dlrmSpec(cfg, { optimizer: 'sgd', hyper: { lr: 0.1 } });
const secret = new TextEncoder().encode(generateSecret());
const sched = await Scheduler.start({ secret });
const server = await PsServer.start({ secret, schedulerUrl: sched.url, nodeId: 'server-0' });
const client = await PSClient.connect({ secret, schedulerUrl: sched.url, nodeId: 'worker-0' });
const gpu: Gpu = await acquireGpu({ label: 'package-user' });
await client.waitForView((v) => v.servers.length === 1 && v.workers.length === 1);
const { specs, tableIds } = psTableSpecs(spec, 1, 3n);
await client.declareTables(specs);
const runner = await ModelRunner.create(gpu, spec, { seed: 1 });
const step = new WorkerStep({ client, runner, tableIds, globalBatch: 8, dense: { mode: 'local', optimizer: { kind: 'sgd', lr: 0.1 } } });
const B = 8;
const batch: WorkerBatch = {
  B,
  inputs: { dense_x: new Float32Array(B * 13).fill(0.5), labels: Float32Array.from({ length: B }, (_, i) => i % 2) },
  tables: Array.from({ length: cfg.numTables }, (_, t) => ({ ids: Uint32Array.from({ length: B }, (_, i) => (i * 7 + t) % cfg.rowsPerTable) })),
};
const r = await step.run(batch);
runner.destroy();
await client.close(); await server.stop(); await sched.stop(); await gpu.destroy();
await writeSafetensors('w.safetensors', { w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
const back = await readSafetensors('w.safetensors');
console.log(JSON.stringify({ loss: r.loss, shaders: DEFAULT_SHADER_DIR, ring: typeof RingAllreduce, tensors: Object.keys(back.tensors) }));
process.exit(0);
`;

test('a script importing the public API type-checks against the shipped .d.ts and runs', () => {
  writeFileSync(join(project, 'use.ts'), USER_SCRIPT);
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, outDir: 'out',
      // Node's types from the repo (a user brings their own @types/node); the WebGPU types come with the package.
      types: ['node'], typeRoots: [join(repo, 'node_modules', '@types')],
    },
    files: ['use.ts'],
  }));
  const tsc = run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.']);
  assert.is(tsc.code, 0, tsc.stdout + tsc.stderr);
  const r = run(process.execPath, [join('out', 'use.js')], { env: { ...process.env, NODE_OPTIONS: '', HYBRIDPS_LOG: 'warn', XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
  assert.is(r.code, 0, r.stderr);
  const j = lastJson(r.stdout);
  assert.ok(Number.isFinite(j.loss) && j.loss > 0, r.stdout);
  assert.is(j.shaders, join(project, 'node_modules', 'hybridps', 'shaders'));
  assert.equal([j.ring, j.tensors], ['function', ['w']]);
});

const OUTSIDE_MODEL = `
import { defineModel, categoricalColumn, dlrmSpec, DLRM_PRESETS, type DlrmConfig, type ModelConfig } from 'hybridps';

// A three-table DLRM over the last three categorical columns: a model of the user's, not a sample.
export const model = defineModel<DlrmConfig & ModelConfig>({
  name: 'outside-dlrm',
  defaults: { ...DLRM_PRESETS.small, numTables: 3, dim: 4, bottom: [13, 8, 4], top: [6, 1], rowsPerTable: 50 },
  validate: (c) => (c.numTables === 3 ? [] : ['model.numTables must be 3']),
  spec: (c, o) => dlrmSpec(c, o),
  toBatch: (r, c) => ({
    B: r.size,
    inputs: { dense_x: r.dense.subarray(0, r.size * r.denseWidth), labels: r.labels.subarray(0, r.size) },
    tables: Array.from({ length: c.numTables }, (_, t) => categoricalColumn(r, r.catWidth - 1 - t)),
  }),
});
`;

test('a model directory outside the repository, importing from the installed package, launches', () => {
  const dir = join(project, 'my-model');
  spawnSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'model.ts'), OUTSIDE_MODEL);
  writeFileSync(join(dir, 'sample.json'), JSON.stringify({ module: './model.js', workers: 1, servers: 1, batch: 32 }));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, outDir: '.', types: ['node'], typeRoots: [join(repo, 'node_modules', '@types')] },
    files: ['model.ts'],
  }));
  const tsc = run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'my-model']);
  assert.is(tsc.code, 0, tsc.stdout + tsc.stderr);
  const r = run('npx', ['hybridps', 'launch', 'my-model', '--data', 'data.tsv', '--steps', '3', '--eval-samples', '100', '--json']);
  assert.is(r.code, 0, r.stderr);
  const j = lastJson(r.stdout);
  assert.equal([j.model, j.workers, j.servers, j.steps], ['outside-dlrm', 1, 1, 3]);
  assert.ok(Number.isFinite(j.logloss), r.stdout);
});

test.run();
