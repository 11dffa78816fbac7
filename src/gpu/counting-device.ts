// A thin counting wrapper around a REAL device: what one training step costs in API traffic
// (submits, CPU waits, dispatches, writeBuffer calls, bytes up and down), measured on the calls
// the code actually makes rather than predicted. The device, its queue, the command encoders and
// compute passes it hands out are Proxies that count and forward to the real objects; buffers are
// the real ones (they are passed into native calls) with mapAsync counted on the instance.
//
//   const c = countingGpu(gpu);
//   const runner = await ModelRunner.create(c.gpu, spec);   // everything made through c.gpu counts
//   c.reset(); await runner.step(...); c.counts             // { submits: 1, cpuWaits: 1, ... }
import type { Gpu } from './device.ts';

export interface GpuCounts {
  /** queue.submit calls. */
  submits: number;
  /** Command buffers submitted (encoders finished and submitted). */
  commandBuffers: number;
  /** Promises the CPU waits on for the GPU: buffer.mapAsync and queue.onSubmittedWorkDone. */
  cpuWaits: number;
  /** dispatchWorkgroups calls (compute passes). */
  dispatches: number;
  /** queue.writeBuffer calls and the bytes they carried. */
  writeBuffers: number;
  bytesUp: number;
  /** copyBufferToBuffer calls into a MAP_READ buffer (readback copies) and their bytes. */
  readbackCopies: number;
  bytesDown: number;
  /** All copyBufferToBuffer calls (device-side copies included). */
  copies: number;
  /** createBindGroup calls (a cached step creates none). */
  bindGroups: number;
}

export interface CountingGpu {
  /** Use this instead of the wrapped Gpu; its device counts. */
  gpu: Gpu;
  counts: GpuCounts;
  /** Sets every count to zero (e.g. before the step to measure). */
  reset(): void;
}

const MAP_READ = 0x0001;

const zero = (): GpuCounts => ({
  submits: 0, commandBuffers: 0, cpuWaits: 0, dispatches: 0, writeBuffers: 0, bytesUp: 0,
  readbackCopies: 0, bytesDown: 0, copies: 0, bindGroups: 0,
});

/** A Proxy that forwards everything to `target` (methods bound to it) except the given hooks. */
function forward<T extends object>(target: T, hooks: Partial<Record<string, unknown>>): T {
  return new Proxy(target, {
    get(t, prop) {
      if (typeof prop === 'string' && prop in hooks) return hooks[prop];
      const v = Reflect.get(t, prop, t); // native getters need the real object as receiver
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

function byteLength(data: ArrayBufferView | ArrayBuffer | SharedArrayBuffer, dataOffset?: number, size?: number): number {
  // writeBuffer(buffer, offset, data, dataOffset?, size?): offsets and size are in elements of a
  // typed array, in bytes for an ArrayBuffer.
  const elem = ArrayBuffer.isView(data) ? ((data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1) : 1;
  const total = ArrayBuffer.isView(data) ? data.byteLength : (data as ArrayBuffer).byteLength;
  if (size !== undefined) return size * elem;
  return total - (dataOffset ?? 0) * elem;
}

export function countingGpu(inner: Gpu): CountingGpu {
  const counts = zero();
  const real = inner.device;

  const countMap = (buffer: GPUBuffer): GPUBuffer => {
    const mapAsync = buffer.mapAsync;
    // Own property on the real buffer object: it still goes into native calls unwrapped.
    (buffer as { mapAsync: GPUBuffer['mapAsync'] }).mapAsync = (...args: Parameters<GPUBuffer['mapAsync']>) => {
      counts.cpuWaits++;
      return mapAsync.apply(buffer, args);
    };
    return buffer;
  };

  const wrapPass = (pass: GPUComputePassEncoder): GPUComputePassEncoder => forward(pass, {
    dispatchWorkgroups: (x: number, y?: number, z?: number) => {
      counts.dispatches++;
      pass.dispatchWorkgroups(x, y, z);
    },
  });

  const wrapEncoder = (enc: GPUCommandEncoder): GPUCommandEncoder => forward(enc, {
    beginComputePass: (desc?: GPUComputePassDescriptor) => wrapPass(enc.beginComputePass(desc)),
    copyBufferToBuffer: (...args: unknown[]) => {
      counts.copies++;
      // (src, srcOffset, dst, dstOffset, size) or the newer (src, dst, size?) form.
      const dst = (typeof args[1] === 'number' ? args[2] : args[1]) as GPUBuffer;
      const size = (typeof args[1] === 'number' ? args[4] : args[2]) as number | undefined;
      if (dst.usage & MAP_READ) {
        counts.readbackCopies++;
        counts.bytesDown += size ?? dst.size;
      }
      return (enc.copyBufferToBuffer as (...a: unknown[]) => void)(...args);
    },
  });

  const queue = forward(real.queue, {
    submit: (buffers: Iterable<GPUCommandBuffer>) => {
      counts.submits++;
      counts.commandBuffers += [...buffers].length;
      real.queue.submit(buffers);
    },
    writeBuffer: (buffer: GPUBuffer, offset: number, data: ArrayBufferView | ArrayBuffer | SharedArrayBuffer, dataOffset?: number, size?: number) => {
      counts.writeBuffers++;
      counts.bytesUp += byteLength(data, dataOffset, size);
      real.queue.writeBuffer(buffer, offset, data as ArrayBuffer, dataOffset, size);
    },
    onSubmittedWorkDone: () => {
      counts.cpuWaits++;
      return real.queue.onSubmittedWorkDone();
    },
  });

  const device = forward(real, {
    queue,
    createCommandEncoder: (desc?: GPUCommandEncoderDescriptor) => wrapEncoder(real.createCommandEncoder(desc)),
    createBuffer: (desc: GPUBufferDescriptor) => {
      const b = real.createBuffer(desc);
      return desc.usage & MAP_READ ? countMap(b) : b;
    },
    createBindGroup: (desc: GPUBindGroupDescriptor) => {
      counts.bindGroups++;
      return real.createBindGroup(desc);
    },
  });

  // Same handle otherwise (destroy() still destroys the real device).
  const gpu: Gpu = { ...inner, device };
  return {
    gpu,
    counts,
    reset() {
      Object.assign(counts, zero());
    },
  };
}
