// Where this package's own files are at run time (shaders/, the CLI entry), from wherever its code
// runs: the TypeScript sources (src/, through tsx), tsc's output (dist/, what the npm package
// ships) or a single-file bundle (bundle/*.mjs, what travels to a GPU box). All three sit below
// the package root, the nearest directory up from this module that holds shaders/.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
