// Finds WGSL kernels by name in a list of directories (earlier ones win, so a user swaps a kernel
// by putting a directory with their own <name>.wgsl first), compiles them into compute pipelines
// with an explicit layout derived from the header, and caches pipelines per name + constants.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Gpu } from './device.ts';
import { parseKernelMeta, type KernelMeta } from './kernel-meta.ts';
import { SHADER_DIR } from '../util/package-files.ts';

export const DEFAULT_SHADER_DIR = SHADER_DIR;

export class KernelCompileError extends Error {}

interface Loaded {
  path: string;
  source: string;
  meta: KernelMeta;
  module?: GPUShaderModule;
  layout?: GPUBindGroupLayout;
  pipelineLayout?: GPUPipelineLayout;
}

export class KernelRegistry {
  readonly searchDirs: string[];
  private loaded = new Map<string, Loaded>();
  private pipelines = new Map<string, Promise<GPUComputePipeline>>();

  constructor(readonly gpu: Gpu, searchDirs?: string[]) {
    this.searchDirs = (searchDirs && searchDirs.length ? searchDirs : [DEFAULT_SHADER_DIR]).map((d) => resolve(d));
  }

  /** Absolute path of the file that defines `name` (first directory that has it). */
  path(name: string): string {
    if (!/^[A-Za-z_][\w-]*$/.test(name)) throw new Error(`bad kernel name "${name}"`);
    for (const dir of this.searchDirs) {
      const p = join(dir, `${name}.wgsl`);
      if (existsSync(p)) return p;
    }
    throw new Error(`kernel "${name}" not found: no ${name}.wgsl in ${this.searchDirs.join(', ')}`);
  }

  /** Names of all kernels visible through the search path. */
  list(): string[] {
    const names = new Set<string>();
    for (const dir of this.searchDirs) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)) if (f.endsWith('.wgsl')) names.add(f.slice(0, -5));
    }
    return [...names].sort();
  }

  meta(name: string): KernelMeta {
    return this.load(name).meta;
  }

  /** The bind group layout shared by every pipeline of this kernel: uniform params + storage. */
  bindGroupLayout(name: string): GPUBindGroupLayout {
    const k = this.load(name);
    if (!k.layout) {
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: k.meta.paramBytes } },
        ...k.meta.bindings.map((b) => ({
          binding: b.binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: (b.access === 'read' ? 'read-only-storage' : 'storage') as GPUBufferBindingType },
        })),
      ];
      k.layout = this.gpu.device.createBindGroupLayout({ label: `${name} bgl`, entries });
      k.pipelineLayout = this.gpu.device.createPipelineLayout({ label: `${name} layout`, bindGroupLayouts: [k.layout] });
    }
    return k.layout;
  }

  /** Compiled pipeline (entry point `main`); cached per name + override constants. */
  pipeline(name: string, constants?: Record<string, number>): Promise<GPUComputePipeline> {
    const key = `${name}|${constants ? JSON.stringify(Object.entries(constants).sort()) : ''}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(name, constants);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key)); // a fixed file can be retried
    }
    return p;
  }

  /** The pipeline if it has been compiled already (for synchronous recording), else undefined. */
  cachedPipeline(name: string, constants?: Record<string, number>): Promise<GPUComputePipeline> | undefined {
    return this.pipelines.get(`${name}|${constants ? JSON.stringify(Object.entries(constants).sort()) : ''}`);
  }

  /** Forgets loaded sources and pipelines (after kernel files changed on disk). */
  reload(): void {
    this.loaded.clear();
    this.pipelines.clear();
  }

  private load(name: string): Loaded {
    let k = this.loaded.get(name);
    if (!k) {
      const path = this.path(name);
      const source = readFileSync(path, 'utf8');
      const meta = parseKernelMeta(source, path);
      if (meta.name !== name) throw new Error(`${path}:1: header says @kernel ${meta.name} but the file is ${name}.wgsl`);
      k = { path, source, meta };
      this.loaded.set(name, k);
    }
    return k;
  }

  private async compile(name: string, constants?: Record<string, number>): Promise<GPUComputePipeline> {
    const k = this.load(name);
    const device = this.gpu.device;
    this.bindGroupLayout(name);
    if (!k.module) {
      // Push and pop around the one call, synchronously, so concurrent compiles cannot swap scopes.
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ label: k.path, code: k.source });
      const scope = device.popErrorScope();
      const info = await module.getCompilationInfo();
      const scopeErr = await scope;
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length) {
        throw new KernelCompileError(errors.map((m) => `${k.path}:${m.lineNum}:${m.linePos}: error: ${m.message}`).join('\n'));
      }
      if (scopeErr) throw new KernelCompileError(`${k.path}: ${scopeErr.message}`);
      for (const m of info.messages) if (m.type === 'warning') process.stderr.write(`${k.path}:${m.lineNum}:${m.linePos}: warning: ${m.message}\n`);
      k.module = module;
    }
    try {
      return await device.createComputePipelineAsync({
        label: name,
        layout: k.pipelineLayout!,
        compute: { module: k.module, entryPoint: 'main', constants },
      });
    } catch (e) {
      throw new KernelCompileError(`${k.path}: pipeline creation failed (entry point "main", layout from the header: binding 0 uniform Params, ${k.meta.bindings.map((b) => `${b.binding} ${b.name} ${b.access}`).join(', ')}): ${(e as Error).message}`);
    }
  }
}
