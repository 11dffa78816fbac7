// `npm run bench -- <name> [--json] [--quick]`: runs one benchmark (ps [--tls], store, kernels, allreduce [--tls], rawring-threads, step, pipeline, data, rowformats).
// step also takes --all, --config NAME[,NAME], --rows-per-table N, --batch N, --steps N,
// --gpu-steps N, --no-pipeline, --cache-rows N, --cache-policy ADMIT:REFRESH[,...], --hot-rows N[,N...] (see bench/step-cluster.ts), --scale-rows M (the same
// configurations again at M rows per table in the same run, and the ratio: bench/step-scale.ts);
// allreduce also takes --crossover or --tls (plain and TLS rings, same run).
const [name, ...rest] = process.argv.slice(2);
const json = rest.includes('--json');
const quick = rest.includes('--quick');
/** The value after `--flag`, or undefined. */
const flag = (f: string): string | undefined => { const i = rest.indexOf(f); return i >= 0 ? rest[i + 1] : undefined; };
const intFlag = (f: string): number | undefined => { const v = flag(f); return v === undefined ? undefined : Number(v); };
const benches: Record<string, () => Promise<object>> = {
  ps: async () => (await import('./ps.ts')).runPsBench({ json, quick, tls: process.argv.includes('--tls') }),
  store: async () => (await import('./store.ts')).runStoreBench({ json, quick }),
  allreduce: async () => (await import('./allreduce.ts')).runAllreduceBench({ json, quick, crossover: rest.includes('--crossover'), tls: rest.includes('--tls') }),
  pipeline: async () => (await import('./pipeline.ts')).runPipelineBench({ quick, log: (s) => (json ? process.stderr : process.stdout).write(s + '\n') }),
  kernels: async () => {
    const kernels = await (await import('./kernels.ts')).runKernelsBench({ json, quick });
    // The full step at the same shapes: pull, upload, compute, download, push (and dense update).
    const log = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');
    log('\nfull DLRM worker step against a loopback server:');
    const step = await (await import('./step.ts')).runStepBench({ quick, log });
    log(`median: ${Object.entries(step).filter(([k]) => k.endsWith('Ms')).map(([k, v]) => `${k.replace('Ms', '')} ${v} ms`).join(', ')}`);
    return { ...kernels, step };
  },
  step: async () => {
    const args = {
      json, quick, all: rest.includes('--all'), config: flag('--config'),
      rowsPerTable: intFlag('--rows-per-table'), batch: intFlag('--batch'), steps: intFlag('--steps'), gpuSteps: intFlag('--gpu-steps'),
      pipeline: !rest.includes('--no-pipeline'), cacheRows: intFlag('--cache-rows'), cachePolicy: flag('--cache-policy'),
      hotRows: flag('--hot-rows')?.split(',').map(Number),
    };
    const scaleRows = intFlag('--scale-rows');
    if (scaleRows !== undefined) return (await import('./step-scale.ts')).runStepScaleBench({ ...args, scaleRows });
    return (await import('./step-cluster.ts')).runStepClusterBench(args);
  },
  // The raw ring with its receiving socket in a worker thread against one thread (bench/raw-ring-threads.ts).
  'rawring-threads': async () => (await import('./raw-ring-threads.ts')).runRawRingThreadsBench({ json, quick }),
  // A worker's share of the data against parsing all of it, plain/gzip/BGZF; also takes --workers W.
  data: async () => (await import('./data.ts')).runDataBench({ json, quick, workers: intFlag('--workers') }),
  // f32 <-> f16 / bf16 conversion of row values (docs/wire.md, Payloads).
  rowformats: async () => (await import('./row-formats.ts')).runRowFormatsBench({ json, quick }),
};
const run = name ? benches[name] : undefined;
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json] [--quick]`);
  process.exit(2);
}
let result: object;
try {
  result = await run();
} catch (e) {
  // A refusal (not enough memory, a bad flag, Ctrl-C) is a sentence and its exit status, not a stack trace.
  const refusal = (e as Error).name === 'BenchRefusal' ? (e as Error & { exitCode: number }) : null;
  console.error(`bench ${name}: ${refusal ? refusal.message : (e as Error).stack ?? e}`);
  process.exit(refusal?.exitCode ?? 1);
}
if (json) console.log(JSON.stringify(result));
process.exit(0);
