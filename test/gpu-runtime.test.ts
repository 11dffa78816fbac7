// The GPU runtime: device acquisition, kernel registry (lookup, override, compile errors,
// constants), buffers (pool, NaN fill, readback) and the dispatcher.
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gpuSuite, finishGpuTests, upload, output, download, runKernel } from './helpers/gpu.ts';
import { acquireGpu, waitIdle, NO_ADAPTER_HELP } from '../src/gpu/device.ts';
import { KernelRegistry, DEFAULT_SHADER_DIR } from '../src/gpu/kernel-registry.ts';
import { Dispatcher } from '../src/gpu/dispatch.ts';
import { BufferPool, fillNaN, readBuffer, STORAGE_USAGE } from '../src/gpu/buffers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'hybridps-kernels-'));

const device = gpuSuite('device');

device('acquires an adapter with raised limits', async ({ gpu }) => {
  assert.ok(gpu.adapterName.length > 0, 'adapter has a name');
  assert.ok(gpu.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
  assert.ok(gpu.limits.maxComputeWorkgroupStorageSize >= 16 * 1024);
  assert.is(await Promise.race([gpu.lost, new Promise((r) => setTimeout(() => r('alive'), 10))]), 'alive');
});

device('the no-adapter error says how to install lavapipe', () => {
  assert.match(NO_ADAPTER_HELP, /bookworm-backports/);
  assert.match(NO_ADAPTER_HELP, /scripts\/setup\.sh/);
  assert.match(NO_ADAPTER_HELP, /Mesa 22/);
});

device('an adapter that does not exist is an error naming the available ones', async () => {
  try {
    await acquireGpu({ adapter: 'no-such-gpu-xyz' });
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.match(String((e as Error).message), /no-such-gpu-xyz/);
  }
});

device('a limit above the adapter maximum is an error naming it', async ({ gpu }) => {
  const max = gpu.limits.maxComputeWorkgroupStorageSize;
  await acquireGpu({ requiredLimits: { maxComputeWorkgroupStorageSize: max * 1024 } }).then(
    () => assert.unreachable('should throw'),
    (e) => assert.match(e.message, /maxComputeWorkgroupStorageSize=\d+ exceeds the adapter's/),
  );
  await acquireGpu({ requiredLimits: { noSuchLimit: 1 } }).then(() => assert.unreachable(), (e) => assert.match(e.message, /Unknown GPU limit "noSuchLimit"/));
});

device('device loss resolves `lost` and rejects pending work instead of hanging', async () => {
  const g = await acquireGpu({ label: 'doomed' });
  const buf = g.device.createBuffer({ size: 64, usage: STORAGE_USAGE });
  g.device.destroy(); // what a driver reset looks like to us
  const reason = await g.lost;
  assert.match(reason, /destroyed/);
  let failed = false;
  await readBuffer(g, buf, 64).catch(() => { failed = true; });
  assert.ok(failed, 'readBuffer rejects after loss');
  await waitIdle(g).catch(() => undefined); // resolves or rejects, never hangs
  await g.destroy();
});

device.run();

const registry = gpuSuite('kernel registry');

registry('finds shipped kernels and parses their headers', ({ kernels }) => {
  assert.is(kernels.path('linear_fwd'), join(DEFAULT_SHADER_DIR, 'linear_fwd.wgsl'));
  assert.equal(kernels.meta('linear_fwd').bindings.map((b) => b.name), ['x', 'w', 'b', 'y']);
  for (const k of ['embedding_bag', 'linear_fwd', 'matmul_naive', 'linear_bwd_input', 'linear_bwd_weight', 'bias_grad', 'relu_bwd', 'interaction_fwd', 'interaction_bwd', 'bce_fwd_bwd', 'sum_reduce', 'segment_sum', 'sgd_update', 'adagrad_update', 'adam_update']) {
    assert.ok(kernels.list().includes(k), `ships ${k}`);
  }
  assert.throws(() => kernels.path('nope'), /kernel "nope" not found/);
});

registry('every shipped kernel compiles', async ({ kernels }) => {
  for (const name of kernels.list()) await kernels.pipeline(name);
});

registry('pipelines are cached per name and constants', async ({ kernels }) => {
  const a = await kernels.pipeline('sgd_update');
  const b = await kernels.pipeline('sgd_update');
  assert.ok(a === b);
});

registry('a compile error names file:line:column and the compiler message', async ({ gpu }) => {
  const dir = join(tmp, 'broken');
  mkdir(dir);
  const path = join(dir, 'broken.wgsl');
  writeFileSync(path, [
    '// @kernel broken',
    '// @doc does not compile',
    '// @param n u32',
    '// @binding 1 x write f32',
    '// @workgroups 1',
    'struct Params { n: u32 }',
    '@group(0) @binding(0) var<uniform> p: Params;',
    '@group(0) @binding(1) var<storage, read_write> x: array<f32>;',
    '@compute @workgroup_size(1) fn main() {',
    '  x[0] = undefined_thing + 1.0;', // line 10
    '}',
  ].join('\n'));
  const reg = new KernelRegistry(gpu, [dir]);
  try {
    await reg.pipeline('broken');
    assert.unreachable('should not compile');
  } catch (e) {
    const msg = (e as Error).message;
    assert.ok(msg.includes(`${path}:10:`), msg);
    assert.match(msg, /undefined_thing/);
  }
});

registry('a header whose binding access disagrees with the WGSL fails at pipeline creation, naming the file', async ({ gpu }) => {
  const dir = join(tmp, 'mismatch');
  mkdir(dir);
  const path = join(dir, 'mismatch.wgsl');
  writeFileSync(path, [
    '// @kernel mismatch',
    '// @param n u32',
    '// @binding 1 x read f32', // but the shader writes x
    '// @workgroups 1',
    'struct Params { n: u32 }',
    '@group(0) @binding(0) var<uniform> p: Params;',
    '@group(0) @binding(1) var<storage, read_write> x: array<f32>;',
    '@compute @workgroup_size(1) fn main() { x[0] = f32(p.n); }',
  ].join('\n'));
  try {
    await new KernelRegistry(gpu, [dir]).pipeline('mismatch');
    assert.unreachable('should fail');
  } catch (e) {
    assert.ok((e as Error).message.includes(path), (e as Error).message);
    assert.match((e as Error).message, /pipeline creation failed/);
  }
});

registry('a header that contradicts the file name is rejected', ({ gpu }) => {
  const dir = join(tmp, 'misnamed');
  mkdir(dir);
  writeFileSync(join(dir, 'alpha.wgsl'), '// @kernel beta\n// @workgroups 1\n');
  assert.throws(() => new KernelRegistry(gpu, [dir]).meta('alpha'), /alpha\.wgsl:1: header says @kernel beta/);
});

registry('a user directory listed first overrides a shipped kernel', async (ctx) => {
  const dir = join(tmp, 'user');
  mkdir(dir);
  // Same interface as the shipped linear_fwd, different math: Y = 2 (X W^T + b).
  const src = readFileSync(join(DEFAULT_SHADER_DIR, 'matmul_naive.wgsl'), 'utf8')
    .replace('@kernel matmul_naive', '@kernel linear_fwd')
    .replace('var v = acc + b[col];', 'var v = 2.0 * (acc + b[col]);');
  writeFileSync(join(dir, 'linear_fwd.wgsl'), src);
  const reg = new KernelRegistry(ctx.gpu, [dir, DEFAULT_SHADER_DIR]);
  assert.is(reg.path('linear_fwd'), join(dir, 'linear_fwd.wgsl'));
  assert.is(reg.path('bias_grad'), join(DEFAULT_SHADER_DIR, 'bias_grad.wgsl'));
  const d = new Dispatcher(ctx.gpu, reg);
  const x = upload(ctx.gpu, new Float32Array([1, 2])), w = upload(ctx.gpu, new Float32Array([3, 4])), b = upload(ctx.gpu, new Float32Array([0.5]));
  const y = output(ctx.gpu, 2);
  await d.run('linear_fwd', { M: 2, N: 1, K: 1, relu: 0 }, [x, w, b, y]);
  assert.equal(Array.from(await download(ctx.gpu, y, 2)), [7, 13]);
});

registry('override constants give separate cached pipelines', async (ctx) => {
  const dir = join(tmp, 'consts');
  mkdir(dir);
  writeFileSync(join(dir, 'scale.wgsl'), [
    '// @kernel scale',
    '// @doc x *= SCALE',
    '// @param n u32',
    '// @binding 1 x read_write f32',
    '// @workgroups ceil(n/64)',
    'override SCALE: f32 = 1.0;',
    'struct Params { n: u32 }',
    '@group(0) @binding(0) var<uniform> p: Params;',
    '@group(0) @binding(1) var<storage, read_write> x: array<f32>;',
    '@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {',
    '  if (g.x < p.n) { x[g.x] = x[g.x] * SCALE; }',
    '}',
  ].join('\n'));
  const reg = new KernelRegistry(ctx.gpu, [dir]);
  const p3 = await reg.pipeline('scale', { SCALE: 3 });
  assert.ok(p3 === (await reg.pipeline('scale', { SCALE: 3 })));
  assert.ok(p3 !== (await reg.pipeline('scale')));
  const d = new Dispatcher(ctx.gpu, reg);
  const x = upload(ctx.gpu, new Float32Array([1, 2, 3]));
  await d.run('scale', { n: 3 }, [x], { constants: { SCALE: 3 } });
  await d.run('scale', { n: 2 }, [x]);
  assert.equal(Array.from(await download(ctx.gpu, x, 3)), [3, 6, 9]);
});

registry.run();

const buffers = gpuSuite('buffers');

buffers('BufferPool reuses a buffer that is big enough and grows one that is not', ({ gpu }) => {
  const pool = new BufferPool(gpu, 't');
  const a = pool.get('x', 1000);
  assert.ok(pool.get('x', 800) === a, 'smaller request reuses');
  const b = pool.get('x', 4000);
  assert.ok(b !== a && b.size >= 4000, 'bigger request reallocates');
  assert.ok(pool.get('x', 4000) === b);
  assert.ok(pool.get('y', 16) !== b, 'names are separate');
  assert.ok(pool.bytes() >= 4016);
  pool.destroyAll();
  assert.is(pool.bytes(), 0);
});

buffers('upload, fillNaN and readBuffer round-trip, with offsets and odd sizes', async ({ gpu }) => {
  const pool = new BufferPool(gpu);
  const data = Float32Array.from({ length: 37 }, (_, i) => i * 0.5 - 3);
  const buf = pool.upload('d', data);
  assert.equal(Array.from(new Float32Array(await readBuffer(gpu, buf, 37 * 4))), Array.from(data));
  assert.equal(Array.from(new Float32Array(await readBuffer(gpu, buf, 8, 4 * 10))), [2, 2.5]);
  fillNaN(gpu, buf, 20);
  const after = new Float32Array(await readBuffer(gpu, buf, 37 * 4));
  assert.ok(after.slice(0, 5).every(Number.isNaN));
  assert.is(after[5], data[5]);
  await assert.not.throws(() => pool.upload('bytes', new Uint8Array([1, 2, 3])));
  pool.destroyAll();
});

buffers('readBuffer refuses unaligned or out-of-range reads', async ({ gpu }) => {
  const buf = gpu.device.createBuffer({ size: 64, usage: STORAGE_USAGE });
  await readBuffer(gpu, buf, 6).then(() => assert.unreachable(), (e) => assert.match(e.message, /multiples of 4/));
  await readBuffer(gpu, buf, 64, 16).then(() => assert.unreachable(), (e) => assert.match(e.message, /past the end/));
  buf.destroy();
});

buffers('readBuffer: several reads in flight at once each get their own data', async ({ gpu }) => {
  const bufs = [1, 2, 3, 4].map((v) => upload(gpu, new Float32Array(16).fill(v)));
  const got = await Promise.all(bufs.map((b) => readBuffer(gpu, b, 64)));
  assert.equal(got.map((a) => new Float32Array(a)[15]), [1, 2, 3, 4]);
  assert.equal(Array.from(new Float32Array(await readBuffer(gpu, bufs[3]!, 16, 48))), [4, 4, 4, 4]);
  assert.is((await readBuffer(gpu, bufs[0]!, 0)).byteLength, 0);
  for (const b of bufs) b.destroy();
});

buffers.run();

const dispatch = gpuSuite('dispatcher');

dispatch('refuses wrong buffer counts, missing params and unprepared kernels', async (ctx) => {
  const d = new Dispatcher(ctx.gpu, ctx.kernels);
  const enc = ctx.gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  const x = upload(ctx.gpu, new Float32Array(4));
  assert.throws(() => d.record(pass, 'sgd_update', { n: 4, lr: 1 }, [x, x]), /not prepared/);
  await d.prepare('sgd_update');
  assert.throws(() => d.record(pass, 'sgd_update', { n: 4, lr: 1 }, [x]), /takes 2 buffers \(param, grad\), got 1/);
  assert.throws(() => d.record(pass, 'sgd_update', { n: 4 }, [x, x]), /missing param "lr"/);
  assert.throws(() => d.record(pass, 'sgd_update', { n: 4, lr: 1 }, [x, x], { workgroups: [70000] }), /outside 0\.\.65535/);
  pass.end();
  d.submit(enc);
  await waitIdle(ctx.gpu);
});

dispatch('many dispatches with different params in one pass (uniform arena grows past its slots)', async (ctx) => {
  const d = new Dispatcher(ctx.gpu, ctx.kernels, { slots: 4 });
  await d.prepare('sgd_update');
  const n = 5;
  const param = upload(ctx.gpu, new Float32Array(n));
  const grad = upload(ctx.gpu, new Float32Array(n).fill(1));
  const enc = ctx.gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  let want = 0;
  for (let i = 1; i <= 100; i++) {
    d.record(pass, 'sgd_update', { n, lr: i / 64 }, [param, grad]);
    want -= i / 64;
  }
  d.record(pass, 'sgd_update', { n: 0, lr: 1 }, [param, grad]); // zero workgroups: skipped
  pass.end();
  d.submit(enc);
  const got = await download(ctx.gpu, param, n);
  assert.ok(got.every((v) => v === want), `${Array.from(got)} vs ${want}`);
  assert.is(d.dispatchCount, 100);
});

dispatch('runKernel surfaces no validation errors for a normal dispatch', async (ctx) => {
  const x = upload(ctx.gpu, new Float32Array([1, 2, 3, 4]));
  const out = output(ctx.gpu, 1);
  await runKernel(ctx, 'sum_reduce', { n: 4, scale: 0.5 }, [x, out]);
  assert.equal(Array.from(await download(ctx.gpu, out, 1)), [5]);
});

dispatch.run();

function mkdir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

const cleanup = gpuSuite('cleanup');
cleanup.after(() => rmSync(tmp, { recursive: true, force: true }));
cleanup.run();

finishGpuTests();
