// Acquires one WebGPU device through Dawn's Node bindings (npm `webgpu`): picks the adapter,
// asks for the limits a training step needs, and gives a handle whose destroy() lets Node exit.
import { create, globals } from 'webgpu';
import { createLogger } from '../util/log.ts';

const log = createLogger('gpu');

export interface Gpu {
  device: GPUDevice;
  adapterName: string;
  limits: GPUSupportedLimits;
  /** Resolves with "reason: message" when the device is lost (destroy() included). */
  lost: Promise<string>;
  /** Waits for submitted work, destroys the device and drops Dawn references so Node can exit. */
  destroy(): Promise<void>;
}

export interface AcquireOptions {
  /** Case-insensitive substring of the adapter's name/vendor/description; env HYBRIDPS_ADAPTER. */
  adapter?: string;
  /** Limits to require on top of the defaults chosen here; must not exceed the adapter's. */
  requiredLimits?: Record<string, number>;
  label?: string;
}

/** Limits raised to the adapter's maximum: big embedding shards and wide workgroups need them. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** Optional features taken when the adapter has them (timing and fp16 paths use them). */
const WANTED_FEATURES: GPUFeatureName[] = ['timestamp-query', 'shader-f16'];

export const NO_ADAPTER_HELP =
  'No WebGPU adapter found (Dawn needs a Vulkan driver). On a machine without a GPU, install ' +
  'Mesa 25 software Vulkan (lavapipe): on Debian bookworm run `bash scripts/setup.sh`, or ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1` (add ' +
  '"deb http://deb.debian.org/debian bookworm-backports main" to your apt sources first). ' +
  'Mesa 22 from bookworm main is too old for Dawn. Also set XDG_RUNTIME_DIR (e.g. /tmp). ' +
  'Check with `vulkaninfo --summary`.';

let globalsInstalled = false;
function installGlobals(): void {
  if (globalsInstalled) return;
  // Dawn's GPUBufferUsage, GPUMapMode, ... constants are expected as globals by WebGPU code.
  for (const [k, v] of Object.entries(globals as Record<string, unknown>)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  globalsInstalled = true;
}

function describeAdapter(a: GPUAdapter): string {
  const i = a.info;
  return i.description || [i.vendor, i.architecture, i.device].filter(Boolean).join(' ') || 'unknown adapter';
}

function adapterMatches(a: GPUAdapter, wanted: string): boolean {
  const i = a.info;
  const hay = [i.vendor, i.architecture, i.device, i.description].join(' ').toLowerCase();
  return hay.includes(wanted.toLowerCase());
}

/**
 * Dawn toggles for every instance. `timestamp_quantization` (on by default, a timing-attack
 * mitigation for browsers) rounds timestamp queries down to multiples of 2^16 ns (65.5 us), which
 * would hide most kernels of a 3 ms step; a training process has no such threat, so it is off and
 * timestamp-query gives the adapter's full resolution (checked on lavapipe: multiples of 65536 ns
 * with the toggle, nanoseconds without).
 */
export const DAWN_FLAGS = ['disable-dawn-features=timestamp_quantization'];

// One Dawn instance per flag set, shared by the live devices made from it and dropped when the
// last of them is destroyed: Node stays alive while an instance is referenced, and creating and
// dropping instances while another device is in use has crashed lavapipe here.
const instances = new Map<string, { gpu: GPU; users: number }>();
function takeInstance(flag: string): GPU {
  let e = instances.get(flag);
  if (!e) {
    e = { gpu: create(flag ? [...DAWN_FLAGS, flag] : DAWN_FLAGS), users: 0 };
    instances.set(flag, e);
  }
  e.users++;
  return e.gpu;
}
function releaseInstance(flag: string): void {
  const e = instances.get(flag);
  if (e && --e.users <= 0) instances.delete(flag);
}

async function requestAdapterFrom(instance: GPU): Promise<GPUAdapter | null> {
  return (await instance.requestAdapter({ powerPreference: 'high-performance' })) ?? null;
}

export async function acquireGpu(opts: AcquireOptions = {}): Promise<Gpu> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // the Vulkan loader warns and some ICDs fail without it
  installGlobals();
  const wanted = opts.adapter ?? (process.env.HYBRIDPS_ADAPTER || undefined);
  const label = opts.label ?? 'hybridps';

  // The instance is what Dawn keeps Node alive for; destroy() releases it.
  let flag = '';
  let instance: GPU | null = takeInstance(flag);
  let adapter: GPUAdapter | null;
  try {
    adapter = await requestAdapterFrom(instance);
  } catch (e) {
    adapter = null;
    log.debug('requestAdapter failed', { error: String(e) });
  }
  if (adapter && wanted && !adapterMatches(adapter, wanted)) {
    // Dawn's own selector matches adapter names and lists the available ones when none fits.
    const defaultName = describeAdapter(adapter);
    adapter = null;
    releaseInstance(flag);
    flag = `adapter=${wanted}`;
    instance = takeInstance(flag);
    try {
      adapter = await requestAdapterFrom(instance);
    } catch (e) {
      releaseInstance(flag);
      throw new Error(`No adapter matches "${wanted}" (from ${opts.adapter ? 'options' : 'HYBRIDPS_ADAPTER'}); default adapter is "${defaultName}". ${String((e as Error).message ?? e)}`);
    }
    if (!adapter) {
      releaseInstance(flag);
      throw new Error(`No adapter matches "${wanted}"; default adapter is "${defaultName}".`);
    }
  }
  if (!adapter) {
    releaseInstance(flag);
    throw new Error(NO_ADAPTER_HELP);
  }

  let device: GPUDevice;
  try {
    const requiredLimits: Record<string, number> = {};
    const adapterLimits = adapter.limits as unknown as Record<string, number>;
    for (const k of RAISED_LIMITS) {
      const v = adapterLimits[k];
      if (typeof v === 'number') requiredLimits[k] = v;
    }
    for (const [k, v] of Object.entries(opts.requiredLimits ?? {})) {
      const max = adapterLimits[k];
      if (typeof max !== 'number') throw new Error(`Unknown GPU limit "${k}"`);
      if (v > max) throw new Error(`Limit ${k}=${v} exceeds the adapter's ${max} (${describeAdapter(adapter)})`);
      requiredLimits[k] = v;
    }
    const requiredFeatures = WANTED_FEATURES.filter((f) => adapter!.features.has(f));
    device = await adapter.requestDevice({ label, requiredLimits, requiredFeatures });
  } catch (e) {
    releaseInstance(flag);
    throw e;
  }
  const adapterName = describeAdapter(adapter);

  let destroyed = false;
  const lost = device.lost.then((info) => {
    if (!destroyed) log.error('device lost', { adapter: adapterName, reason: info.reason, message: info.message });
    return `${info.reason}: ${info.message}`;
  });
  device.addEventListener('uncapturederror', (ev) => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    log.error('uncaptured GPU error', { label, type: err.constructor?.name, message: err.message });
  });

  const gpu: Gpu = {
    device,
    adapterName,
    limits: device.limits,
    lost,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      // Lavapipe can crash at exit with work in flight: drain first, but never hang on a lost device.
      await Promise.race([
        device.queue.onSubmittedWorkDone().catch(() => undefined),
        lost,
        new Promise((r) => setTimeout(r, 10_000).unref()),
      ]);
      device.destroy();
      adapter = null;
      instance = null;
      releaseInstance(flag);
    },
  };
  return gpu;
}

/** Resolves when the queue is idle; rejects if the device is lost first (no hang on loss). */
export function waitIdle(gpu: Gpu): Promise<void> {
  return settleOrLost(gpu, gpu.device.queue.onSubmittedWorkDone());
}

/**
 * Pending settleOrLost() calls per device, rejected together when it is lost. One handler on
 * `gpu.lost` per device, not one per call: `lost` never settles while the device lives, so a
 * reaction attached to it per call (Promise.race with `lost.then(...)`) was kept forever, about
 * 465 bytes a call and three calls a training step.
 */
interface LossWatch { reason?: string; pending: Set<(e: Error) => void> }
const lossWatches = new WeakMap<Gpu, LossWatch>();
function lossWatch(gpu: Gpu): LossWatch {
  let w = lossWatches.get(gpu);
  if (!w) {
    const watch: LossWatch = { pending: new Set() };
    void gpu.lost.then((reason) => {
      watch.reason = reason;
      const err = lostError(gpu, reason);
      for (const reject of watch.pending) reject(err);
      watch.pending.clear();
    });
    lossWatches.set(gpu, (w = watch));
  }
  return w;
}
const lostError = (gpu: Gpu, reason: string) => new Error(`GPU device lost (${gpu.adapterName}): ${reason}`);

/** Races a GPU promise against device loss so callers see an error instead of a hang. */
export function settleOrLost<T>(gpu: Gpu, p: Promise<T>): Promise<T> {
  const watch = lossWatch(gpu);
  if (watch.reason !== undefined) {
    p.catch(() => undefined); // nobody waits for it any more
    return Promise.reject(lostError(gpu, watch.reason));
  }
  return new Promise<T>((resolve, reject) => {
    watch.pending.add(reject);
    p.then(
      (v) => { watch.pending.delete(reject); resolve(v); },
      (e) => { watch.pending.delete(reject); reject(e); },
    );
  });
}
