// The side-by-side of step-vs-torch.sh, from the JSON files its parts left in OUTDIR (env.json,
// kernels.json, step.json, torch.json): one JSON object on stdout. Plain Node, no dependencies
// (it runs with the carried node binary). Usage: node side-by-side.mjs OUTDIR
// Exit 3, with "refused", when the numbers come from a software adapter without --software-ok:
// the adapter is checked again here, by the name the kernels benchmark itself reports.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|softpipe|\bsoftware\b/i; // as in probe.ts
const dir = process.argv[2];
const read = (f) => { try { return JSON.parse(readFileSync(join(dir, f), 'utf8')); } catch (e) { return { error: `${f}: ${e.message}` }; } };
const env = read('env.json'), kernels = read('kernels.json'), step = read('step.json'), torch = read('torch.json');
const round = (x, d = 3) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : null);

const adapterName = kernels.adapter ?? env.adapter?.description ?? null;
const software = !!env.adapter?.software || SOFTWARE_ADAPTER.test(String(adapterName ?? ''));
const res = {
  adapter: { name: adapterName, vendor: env.adapter?.vendor ?? null, architecture: env.adapter?.architecture ?? null, driver: env.adapter?.description ?? null, software },
  numbers: software ? 'CPU (software adapter, --software-ok): not GPU numbers' : 'GPU',
  nvidiaSmi: env.nvidiaSmi ?? null,
  batch: step.batch ?? null,
  errors: [kernels, step, torch, env].map((j) => j.error).filter(Boolean),
};
if (software && !env.softwareOk) {
  console.log(JSON.stringify({ ...res, refused: 'software adapter: no GPU numbers are reported from it' }));
  process.exit(3);
}
if (!kernels.error) {
  res.kernels = { timing: kernels.timing, batch: kernels.batch, forwardMs: kernels.forwardMs, backwardMs: kernels.backwardMs,
    linearGflops: kernels.linearGflops, naiveGflops: kernels.naiveGflops, linearVsNaive: kernels.ratio, cases: kernels.kernels?.length ?? 0 };
}
if (!step.error) {
  const phases = Object.fromEntries(Object.entries(step).filter(([k]) => k.endsWith('Ms')));
  const gpuPart = ['uploadMs', 'computeMs', 'downloadMs', 'denseMs'].reduce((s, k) => s + (step[k] ?? 0), 0);
  const whole = Object.values(phases).reduce((s, v) => s + v, 0);
  Object.assign(res, { stepPhasesMs: phases, hybridpsGpuPartMs: round(gpuPart), hybridpsStepMs: round(whole) });
  if (Number.isFinite(torch.torchStepMs)) {
    Object.assign(res, { torchStepMs: torch.torchStepMs, torchDevice: torch.device ?? null,
      ratioGpuPart: round(gpuPart / torch.torchStepMs), ratioWholeStep: round(whole / torch.torchStepMs) });
  }
}
if (torch.skipped) res.torch = `skipped (${torch.skipped})`;
console.log(JSON.stringify(res));
process.exit(res.errors.length ? 1 : 0);
