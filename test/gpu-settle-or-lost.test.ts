// settleOrLost(): races GPU promises against device loss without keeping anything per call. It
// used to attach a reaction to `gpu.lost` on every call, and `lost` never settles while the
// device lives, so each call left about 465 bytes behind (three calls per training step).
// The heap test needs `global.gc`: scripts/run-tests.mjs starts every test with --expose-gc.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { gpuSuite, finishGpuTests } from './helpers/gpu.ts';
import { settleOrLost, type Gpu } from '../src/gpu/device.ts';

const CALLS = 10_000;

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('global.gc is missing: run this file with node --expose-gc (scripts/run-tests.mjs does)');
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

/** Heap growth in bytes over `CALLS` settled calls on `gpu`, after a warm-up. */
async function growthOver(gpu: Gpu): Promise<number> {
  const round = async () => { for (let i = 0; i < CALLS; i++) await settleOrLost(gpu, Promise.resolve(i)); };
  await round(); await round(); // warm-up: JIT, lazily created state
  const before = heapAfterGc();
  await round();
  return heapAfterGc() - before;
}

const real = gpuSuite('settleOrLost on a live device');

real(`${CALLS} settled calls leave the heap flat`, async ({ gpu }) => {
  const grew = await growthOver(gpu);
  console.log(`heap growth over ${CALLS} calls: ${grew} bytes`);
  // The leak was ~500 B a call (5 MB here); the heap's own noise under load reached ~230 KB.
  assert.ok(grew < 1_000_000, `heap grew ${grew} bytes over ${CALLS} calls (${(grew / CALLS).toFixed(0)} B/call)`);
});

real('passes values and errors through', async ({ gpu }) => {
  assert.is(await settleOrLost(gpu, Promise.resolve(42)), 42);
  await settleOrLost(gpu, Promise.reject(new Error('boom'))).then(
    () => assert.unreachable('should reject'),
    (e) => assert.is((e as Error).message, 'boom'),
  );
  await settleOrLost(gpu, gpu.device.queue.onSubmittedWorkDone());
});

real.run();

// Loss, with a stand-in Gpu whose `lost` we resolve by hand (no real device is lost).
const loss = suite('settleOrLost on loss');

function fakeGpu(): { gpu: Gpu; lose: (reason: string) => void } {
  let lose!: (reason: string) => void;
  const lost = new Promise<string>((r) => { lose = r; });
  return { gpu: { adapterName: 'fake adapter', lost } as Gpu, lose };
}

loss('pending calls reject when the device is lost, later calls reject at once', async () => {
  const { gpu, lose } = fakeGpu();
  const never = new Promise<number>(() => {});
  const pending = [settleOrLost(gpu, never), settleOrLost(gpu, never)];
  const done = settleOrLost(gpu, Promise.resolve('done'));
  assert.is(await done, 'done');
  lose('unknown: driver reset');
  for (const p of pending) {
    await p.then(() => assert.unreachable('should reject'), (e) => assert.match((e as Error).message, /GPU device lost \(fake adapter\): unknown: driver reset/));
  }
  await settleOrLost(gpu, never).then(() => assert.unreachable('should reject'), (e) => assert.match((e as Error).message, /driver reset/));
});

loss(`${CALLS} settled calls leave the heap flat on a stand-in device too`, async () => {
  const { gpu } = fakeGpu();
  const grew = await growthOver(gpu);
  assert.ok(grew < 1_000_000, `heap grew ${grew} bytes`);
});

loss.run();

finishGpuTests();
