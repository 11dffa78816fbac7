// `npm run bench -- <name> [--json] [--quick]`: runs one benchmark (ps, kernels, allreduce, pipeline).
const [name, ...rest] = process.argv.slice(2);
const json = rest.includes('--json');
const quick = rest.includes('--quick');
const benches: Record<string, () => Promise<object>> = {
  ps: async () => (await import('./ps.ts')).runPsBench({ json, quick }),
  allreduce: async () => (await import('./allreduce.ts')).runAllreduceBench({ json, quick }),
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
};
const run = name ? benches[name] : undefined;
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json] [--quick]`);
  process.exit(2);
}
const result = await run();
if (json) console.log(JSON.stringify(result));
process.exit(0);
