// Where this package's own files are at run time (shaders/, the CLI entry), from wherever its code
// runs: the TypeScript sources (src/, through tsx), tsc's output (dist/, what the npm package
// ships) or a single-file bundle (bundle/*.mjs, what travels to a GPU box). All three sit below
// the package root, the nearest directory up from this module that holds shaders/.
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const here = fileURLToPath(import.meta.url);

function packageRoot(): string {
  for (let dir = dirname(here); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'shaders'))) return dir;
    if (dirname(dir) === dir) return resolve(dirname(here), '..', '..'); // not found: the source layout
  }
}

/** The package root: the repository checkout, the installed package, or the unpacked bundle. */
export const PACKAGE_ROOT = packageRoot();

/** The shipped WGSL kernels. */
export const SHADER_DIR = join(PACKAGE_ROOT, 'shaders');

/**
 * Node arguments that run the `hybridps` CLI in a child process the way this process runs it:
 * `--import tsx src/cli/main.ts` from the sources, `dist/cli/main.js` from the package, and the
 * bundle itself from a bundle (only the CLI bundle starts children).
 */
export function cliNodeArgs(): string[] {
  if (here.endsWith('.ts')) return ['--import', 'tsx', join(PACKAGE_ROOT, 'src', 'cli', 'main.ts')];
  const compiled = resolve(dirname(here), '..', 'cli', 'main.js');
  return [existsSync(compiled) ? compiled : here];
}

/**
 * V8 flags for the processes of long-running roles (scheduler, server, worker), put before
 * `cliNodeArgs()` wherever this package starts one. Why `--initial-heap-size`: a worker's step
 * allocates frames and rows (~16 MB a step at the gpu preset) and V8 answered with ~2.5 full
 * mark-compacts a step on an 11-17 MB heap (20% of the worker's CPU); with the first heap limits
 * at 512 MB there were a third as many, and the worker's CPU per step fell from 43-51 ms to
 * 21-27 ms (bench step s2-w1-adagrad-bsp, 4 runs each, load 12-20, 2026-12-02; worker RSS 225 ->
 * 270-280 MB). Nothing is reserved up front. `NODE_OPTIONS` does not accept this flag, and
 * `v8.setFlagsFromString` is too late for it (the heap is sized at start), so it has to be on
 * the command line: a role started by hand runs `node --initial-heap-size=512 $(command -v hybridps) run ...`.
 */
export const ROLE_V8_FLAGS: readonly string[] = ['--initial-heap-size=512'];

/**
 * A worker thread running this package's module `rel` (e.g. 'train/data-thread-main'), the way
 * this process runs its code: from the sources through tsx (a thread does not inherit `--import
 * tsx`, so a small bootstrap registers it first), from dist/ the compiled module, from a bundle
 * the entry bundled beside it (scripts/gpu-box/bundle.mjs bundles each such module as its own entry).
 */
export function moduleThread(rel: string, workerData: unknown): Worker {
  if (here.endsWith('.ts')) {
    const tsx = import.meta.resolve('tsx/esm/api'), entry = pathToFileURL(join(PACKAGE_ROOT, 'src', `${rel}.ts`)).href;
    const boot = `import(${JSON.stringify(tsx)}).then((m) => m.register()).then(() => import(${JSON.stringify(entry)}));`;
    return new Worker(boot, { eval: true, workerData });
  }
  const compiled = resolve(dirname(here), '..', `${rel}.js`);
  return new Worker(existsSync(compiled) ? compiled : join(dirname(here), `${basename(rel)}.mjs`), { workerData });
}
