// The adapter this process gets from Dawn, checked before any GPU number is taken. Bundled to
// bundle/probe.mjs for the GPU box (scripts/gpu-box/bundle.mjs); prints one JSON line:
//   { node, execPath, webgpu, vendor, architecture, device, description, fallback, software, adapterName, ok, refused? }
//   node probe.mjs [--software-ok] [--vendor NAME]
// `description` is Dawn's driver string (e.g. "NVIDIA: 570.124.06", "llvmpipe: Mesa 25.0.7 ...").
// Exit 0: usable; 3: refused (a software rasterizer without --software-ok, or not the --vendor
// asked for); 2: no adapter at all. It then opens a device through acquireGpu(), the path the
// benchmarks take, and checks it names the same adapter.
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import { acquireGpu } from '../../src/gpu/device.ts';

/** Software rasterizers: numbers from these are CPU numbers, never GPU ones. */
export const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|softpipe|\bsoftware\b/i;

const args = process.argv.slice(2);
const softwareOk = args.includes('--software-ok');
const vendorAt = args.indexOf('--vendor');
const wantVendor = vendorAt >= 0 ? args[vendorAt + 1]?.toLowerCase() : undefined;

const report: Record<string, unknown> = {
  node: process.version,
  execPath: process.execPath,
  webgpu: fileURLToPath(import.meta.resolve('webgpu')),
};
const done = (code: number) => {
  console.log(JSON.stringify({ ...report, ok: code === 0 }));
  setTimeout(() => process.exit(code), 50);
};

process.env.XDG_RUNTIME_DIR ??= '/tmp';
for (const [k, v] of Object.entries(globals as Record<string, unknown>)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
if (!adapter) {
  report.refused = 'no WebGPU adapter: no Vulkan loader or ICD Dawn could use (see the checks above)';
  done(2);
} else {
  const i = adapter.info;
  const fallback = (i as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const software = fallback || SOFTWARE_ADAPTER.test([i.vendor, i.architecture, i.device, i.description].join(' '));
  Object.assign(report, { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, fallback, software });
  if (software && !softwareOk) {
    report.refused = `software adapter (${i.description || i.device}): its numbers are CPU numbers; pass --software-ok to run anyway (local proof only)`;
    done(3);
  } else if (wantVendor && !`${i.vendor} ${i.description}`.toLowerCase().includes(wantVendor)) {
    report.refused = `adapter vendor "${i.vendor}" (${i.description}) is not the ${wantVendor} one asked for`;
    done(3);
  } else {
    const gpu = await acquireGpu({ label: 'probe' });
    report.adapterName = gpu.adapterName;
    report.limits = { maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize, maxBufferSize: gpu.limits.maxBufferSize };
    report.features = [...gpu.device.features].sort();
    await gpu.destroy();
    done(0);
  }
}
