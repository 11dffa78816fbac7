// `npm run build` (and `npm pack`'s prepack): compiles src/ into dist/ as JavaScript plus .d.ts
// (tsconfig.build.json; the sources' `.ts` import suffixes become `.js`). dist/ is cleared first
// so a module removed from src/ does not linger in the package.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
