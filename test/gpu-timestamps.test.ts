// Timestamp queries come back at the adapter's resolution: the runtime turns Dawn's
// timestamp_quantization toggle off (src/gpu/device.ts DAWN_FLAGS), which otherwise rounds every
// timestamp down to a multiple of 65536 ns and hides kernels shorter than that.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, upload } from './helpers/gpu.ts';

const s = gpuSuite('timestamp queries');

s('are not quantized to 65536 ns', async (ctx) => {
  const { gpu } = ctx;
  if (!gpu.device.features.has('timestamp-query')) {
    console.log(`  (${gpu.adapterName} has no timestamp-query: nothing to check)`);
    return;
  }
  await ctx.dispatcher.prepare('sum_reduce');
  const n = 8;
  const qs = gpu.device.createQuerySet({ type: 'timestamp', count: 2 * n });
  const resolve = gpu.device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = gpu.device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const x = upload(gpu, new Float32Array(4096).fill(1)), out = upload(gpu, new Float32Array(4));
  const enc = gpu.device.createCommandEncoder();
  for (let i = 0; i < n; i++) {
    const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
    ctx.dispatcher.record(pass, 'sum_reduce', { n: 4096 }, [x, out]);
    pass.end();
  }
  enc.resolveQuerySet(qs, 0, 2 * n, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, 16 * n);
  ctx.dispatcher.submit(enc);
  await read.mapAsync(GPUMapMode.READ);
  const t = Array.from(new BigUint64Array(read.getMappedRange().slice(0)));
  read.unmap();
  for (let i = 0; i < n; i++) assert.ok(t[2 * i + 1]! >= t[2 * i]!, 'end after begin');
  const quantized = t.filter((v) => v % 65536n === 0n).length;
  assert.ok(quantized < t.length, `all ${t.length} timestamps are multiples of 65536 ns: quantization is on`);
  qs.destroy();
});

s.run();
finishGpuTests();
