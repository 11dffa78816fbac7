// Records kernel dispatches: params go into one uniform arena (a slot per dispatch, bound with a
// dynamic offset, written by one queue.writeBuffer at submit), bind groups are created once per
// buffer set and reused, workgroup counts come from the kernel header's formula.
//
//   const d = new Dispatcher(gpu, registry);
//   await d.prepare('linear_fwd', 'bias_grad');          // compile once
//   const enc = gpu.device.createCommandEncoder(); const pass = enc.beginComputePass();
//   d.record(pass, 'linear_fwd', { M, N, K, relu: 1 }, [x, w, b, y]);
//   pass.end(); d.submit(enc);                             // writes params, then submits
import type { Gpu } from './device.ts';
import { waitIdle } from './device.ts';
import type { KernelRegistry } from './kernel-registry.ts';
import { packParams, workgroupCounts, type KernelMeta } from './kernel-meta.ts';

export type BufferArg = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export interface RecordOptions {
  /** Explicit workgroup counts instead of the header's @workgroups formula. */
  workgroups?: [number, number?, number?];
  /** Pipeline override constants (a separate cached pipeline per set). */
  constants?: Record<string, number>;
}

let nextBufferId = 1;
const bufferIds = new WeakMap<GPUBuffer, number>();
function bufferId(b: GPUBuffer): number {
  let id = bufferIds.get(b);
  if (id === undefined) {
    id = nextBufferId++;
    bufferIds.set(b, id);
  }
  return id;
}

function isBinding(b: BufferArg): b is { buffer: GPUBuffer; offset?: number; size?: number } {
  return typeof (b as GPUBuffer).mapAsync !== 'function';
}

const MAX_BIND_GROUPS = 4096;

export class Dispatcher {
  private ready = new Map<string, GPUComputePipeline>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private arena!: GPUBuffer;
  private arenaId = 0;
  private cpu!: ArrayBuffer;
  private cursor = 0;
  private readonly stride: number;
  /** Dispatches recorded since construction (for overhead accounting). */
  dispatchCount = 0;

  constructor(readonly gpu: Gpu, readonly registry: KernelRegistry, opts: { slots?: number } = {}) {
    // A slot holds one dispatch's Params (<= 256 bytes of header params) at an aligned offset.
    this.stride = Math.max(256, gpu.limits.minUniformBufferOffsetAlignment);
    this.allocArena(opts.slots ?? 64);
  }

  private key(name: string, constants?: Record<string, number>): string {
    return `${name}|${constants ? JSON.stringify(Object.entries(constants).sort()) : ''}`;
  }

  /** Compiles the kernels so record() can use them synchronously. */
  async prepare(...names: (string | { name: string; constants?: Record<string, number> })[]): Promise<void> {
    await Promise.all(names.map(async (n) => {
      const name = typeof n === 'string' ? n : n.name;
      const constants = typeof n === 'string' ? undefined : n.constants;
      const k = this.key(name, constants);
      if (!this.ready.has(k)) this.ready.set(k, await this.registry.pipeline(name, constants));
    }));
  }

  meta(name: string): KernelMeta {
    return this.registry.meta(name);
  }

  /** Records one dispatch into `pass`. Call submit() (not queue.submit) for the encoder afterwards. */
  record(pass: GPUComputePassEncoder, name: string, params: Record<string, number | boolean>, buffers: BufferArg[], opts: RecordOptions = {}): void {
    const pipeline = this.ready.get(this.key(name, opts.constants));
    if (!pipeline) throw new Error(`kernel ${name} is not prepared: call await dispatcher.prepare('${name}') first`);
    const meta = this.registry.meta(name);
    if (buffers.length !== meta.bindings.length) {
      throw new Error(`kernel ${name} takes ${meta.bindings.length} buffers (${meta.bindings.map((b) => b.name).join(', ')}), got ${buffers.length}`);
    }
    let counts: [number, number, number];
    if (opts.workgroups) counts = [opts.workgroups[0], opts.workgroups[1] ?? 1, opts.workgroups[2] ?? 1];
    else counts = workgroupCounts(meta, params);
    const maxDim = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    counts.forEach((c, i) => {
      if (!Number.isInteger(c) || c < 0 || c > maxDim) throw new Error(`kernel ${name}: workgroup count ${'xyz'[i]}=${c} outside 0..${maxDim}`);
    });
    if (counts[0] === 0 || counts[1] === 0 || counts[2] === 0) return; // empty shape: nothing to do

    if (meta.paramBytes > this.stride) throw new Error(`kernel ${name}: ${meta.params.length} params exceed one ${this.stride}-byte uniform slot`);
    if (this.cursor + this.stride > this.cpu.byteLength) this.growArena();
    const offset = this.cursor;
    packParams(meta, params, new DataView(this.cpu, offset, meta.paramBytes));
    this.cursor += this.stride;

    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.bindGroup(name, meta, buffers), [offset]);
    pass.dispatchWorkgroups(counts[0], counts[1], counts[2]);
    this.dispatchCount++;
  }

  /** Writes the params of everything recorded so far; the encoders must be submitted next. */
  flush(): void {
    if (this.cursor > 0) this.gpu.device.queue.writeBuffer(this.arena, 0, this.cpu, 0, this.cursor);
    this.cursor = 0;
  }

  /** flush() + queue.submit of the encoders. */
  submit(...encoders: GPUCommandEncoder[]): void {
    this.flush();
    this.gpu.device.queue.submit(encoders.map((e) => e.finish()));
  }

  /** Prepares, records and submits a single dispatch in its own pass; resolves when it is done. */
  async run(name: string, params: Record<string, number | boolean>, buffers: BufferArg[], opts: RecordOptions = {}): Promise<void> {
    await this.prepare({ name, constants: opts.constants });
    const enc = this.gpu.device.createCommandEncoder({ label: name });
    const pass = enc.beginComputePass({ label: name });
    this.record(pass, name, params, buffers, opts);
    pass.end();
    this.submit(enc);
    await waitIdle(this.gpu);
  }

  private bindGroup(name: string, meta: KernelMeta, buffers: BufferArg[]): GPUBindGroup {
    let key = `${name}|${this.arenaId}`;
    for (const b of buffers) {
      if (isBinding(b)) key += `|${bufferId(b.buffer)}:${b.offset ?? 0}:${b.size ?? ''}`;
      else key += `|${bufferId(b)}`;
    }
    let bg = this.bindGroups.get(key);
    if (!bg) {
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups.clear(); // stale sets from replaced buffers
      bg = this.gpu.device.createBindGroup({
        label: `${name} bg`,
        layout: this.registry.bindGroupLayout(name),
        entries: [
          { binding: 0, resource: { buffer: this.arena, offset: 0, size: meta.paramBytes } },
          ...buffers.map((b, i) => ({
            binding: i + 1,
            resource: isBinding(b) ? { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } : { buffer: b },
          })),
        ],
      });
      this.bindGroups.set(key, bg);
    }
    return bg;
  }

  private allocArena(slots: number): void {
    this.arena = this.gpu.device.createBuffer({ label: 'dispatch params', size: slots * this.stride, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.cpu = new ArrayBuffer(slots * this.stride);
    this.arenaId++;
  }

  private growArena(): void {
    // Dispatches already recorded point at the old arena: write their params there and let it be
    // collected after the submit (not destroyed: the recorded commands still use it).
    const slots = (this.cpu.byteLength / this.stride) * 2;
    this.flush();
    this.bindGroups.clear();
    this.allocArena(slots);
  }
}
