#!/usr/bin/env node
// `hybridps`. The installed package runs the compiled CLI (dist/, built by `npm run build`, which
// `npm pack` runs). In a checkout of the repository (src/ beside bin/) it runs the TypeScript
// sources through tsx (a dev dependency there), so edits need no build step.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const sources = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
if (existsSync(sources)) {
  // --initial-heap-size: the roles' V8 flag (ROLE_V8_FLAGS in src/util/package-files.ts says why).
  const r = spawnSync(process.execPath, ['--initial-heap-size=512', '--import', 'tsx', sources, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else {
  await import('../dist/cli/main.js');
}
