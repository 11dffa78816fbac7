// GPU buffers: a pool that creates each named buffer once per shape and reuses it, uploads via
// queue.writeBuffer, NaN fill, and one-off readback (readBuffer) for tests, benchmarks and tools.
// The model runner reads its step results back through a staging buffer of its own.
import type { Gpu } from './device.ts';
import { settleOrLost } from './device.ts';

/** STORAGE | COPY_SRC | COPY_DST, as numbers so this module loads before Dawn's globals exist. */
export const STORAGE_USAGE = 0x0080 | 0x0004 | 0x0008;

const align4 = (n: number) => Math.ceil(n / 4) * 4;
/** Buffers are made a multiple of 16 bytes so kernels may bind them as array<vec4f>. */
const align16 = (n: number) => Math.ceil(n / 16) * 16;

export class BufferPool {
  private buffers = new Map<string, { buffer: GPUBuffer; usage: number }>();

  constructor(readonly gpu: Gpu, readonly label = 'pool') {}

  /** The buffer called `name`, reused when it is at least `bytes` long with the same usage. */
  get(name: string, bytes: number, usage: GPUBufferUsageFlags = STORAGE_USAGE): GPUBuffer {
    const size = Math.max(16, align16(bytes));
    const have = this.buffers.get(name);
    if (have && have.buffer.size >= size && (have.usage & usage) === usage) return have.buffer;
    const max = this.gpu.limits.maxBufferSize;
    if (size > max) throw new Error(`buffer ${name}: ${size} bytes exceeds maxBufferSize ${max} (${this.gpu.adapterName}); shard it`);
    have?.buffer.destroy();
    const u = have ? usage | have.usage : usage;
    // Grow with headroom so a slowly growing shape (unique rows per batch) does not reallocate each step.
    const grown = have ? Math.min(max, align16(Math.max(size, Math.ceil(have.buffer.size * 1.25)))) : size;
    const buffer = this.gpu.device.createBuffer({ label: `${this.label}:${name}`, size: grown, usage: u });
    this.buffers.set(name, { buffer, usage: u });
    return buffer;
  }

  /** get() + queue.writeBuffer of `data` at offset 0. */
  upload(name: string, data: ArrayBufferView, usage: GPUBufferUsageFlags = STORAGE_USAGE): GPUBuffer {
    const buf = this.get(name, data.byteLength, usage | GPUBufferUsage.COPY_DST);
    writeView(this.gpu, buf, data);
    return buf;
  }

  has(name: string): boolean {
    return this.buffers.has(name);
  }

  release(name: string): void {
    this.buffers.get(name)?.buffer.destroy();
    this.buffers.delete(name);
  }

  destroyAll(): void {
    for (const { buffer } of this.buffers.values()) buffer.destroy();
    this.buffers.clear();
  }

  /** Total bytes held (for logs and memory checks). */
  bytes(): number {
    let n = 0;
    for (const { buffer } of this.buffers.values()) n += buffer.size;
    return n;
  }
}

/** Writes a typed array at `offset` bytes; pads the tail to 4 bytes as writeBuffer requires. */
export function writeView(gpu: Gpu, buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
  if (data.byteLength % 4 === 0) {
    gpu.device.queue.writeBuffer(buf, offset, data.buffer, data.byteOffset, data.byteLength);
  } else {
    const padded = new Uint8Array(align4(data.byteLength));
    padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    gpu.device.queue.writeBuffer(buf, offset, padded);
  }
}

/** Creates a STORAGE|COPY_SRC|COPY_DST buffer holding `data`. */
export function createBufferFrom(gpu: Gpu, data: ArrayBufferView, label = 'data', extraUsage = 0): GPUBuffer {
  const buf = gpu.device.createBuffer({ label, size: Math.max(16, align16(data.byteLength)), usage: STORAGE_USAGE | extraUsage });
  writeView(gpu, buf, data);
  return buf;
}

const NAN_BITS = 0x7fc00000;

/** Fills the first `bytes` of `buf` with f32 NaN (to catch outputs a kernel forgot to write). */
export function fillNaN(gpu: Gpu, buf: GPUBuffer, bytes: number = buf.size): void {
  const n = Math.ceil(bytes / 4);
  const chunk = new Uint32Array(Math.min(n, 1 << 20)).fill(NAN_BITS);
  for (let at = 0; at < n; at += chunk.length) {
    const len = Math.min(chunk.length, n - at);
    gpu.device.queue.writeBuffer(buf, at * 4, chunk.buffer, 0, len * 4);
  }
}

/**
 * Copies `bytes` from `src` (at `offset`) back to the CPU, through a MAP_READ staging buffer made
 * for this read and destroyed after it (reads in flight at once do not share one). Rejects if the
 * device is lost.
 */
export async function readBuffer(gpu: Gpu, src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  if (bytes % 4 !== 0 || offset % 4 !== 0) throw new Error(`readback of ${bytes} bytes at ${offset}: both must be multiples of 4`);
  if (offset + bytes > src.size) throw new Error(`readback of ${bytes} bytes at ${offset} past the end of ${src.label || 'buffer'} (${src.size} bytes)`);
  if (bytes === 0) return new ArrayBuffer(0);
  const staging = gpu.device.createBuffer({ label: 'readBuffer staging', size: Math.max(16, align4(bytes)), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const enc = gpu.device.createCommandEncoder({ label: 'readBuffer' });
    enc.copyBufferToBuffer(src, offset, staging, 0, bytes);
    gpu.device.queue.submit([enc.finish()]);
    await settleOrLost(gpu, staging.mapAsync(GPUMapMode.READ, 0, bytes));
    return staging.getMappedRange(0, bytes).slice(0);
  } finally {
    staging.destroy();
  }
}
