// `npm run bench -- <name> [--json] [--quick]`: runs one benchmark (ps, kernels, allreduce).
const [name, ...rest] = process.argv.slice(2);
const json = rest.includes('--json');
const quick = rest.includes('--quick');
const benches: Record<string, () => Promise<object>> = {
  ps: async () => (await import('./ps.ts')).runPsBench({ json, quick }),
  kernels: async () => (await import('./kernels.ts')).runKernelsBench({ json, quick }),
  allreduce: async () => (await import('./allreduce.ts')).runAllreduceBench({ json, quick }),
};
const run = name ? benches[name] : undefined;
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--json] [--quick]`);
  process.exit(2);
}
const result = await run();
if (json) console.log(JSON.stringify(result));
process.exit(0);
