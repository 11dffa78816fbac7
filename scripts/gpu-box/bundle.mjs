// Builds the app that travels to a GPU box: plain JavaScript that runs with a bare `node`, no
// npm, no dev dependency, no network. Usage: node scripts/gpu-box/bundle.mjs OUTDIR
//
//   OUTDIR/bundle/hybridps.mjs   the CLI (it is also what `launch` starts its children with)
//   OUTDIR/bundle/kernels.mjs    bench/kernels.ts      OUTDIR/bundle/step.mjs   bench/step.ts
//   OUTDIR/bundle/probe.mjs      scripts/gpu-box/probe.ts (the adapter check)
//   OUTDIR/bundle/data-thread-main.mjs   the training data reader's thread (src/train/data-thread.ts)
//   OUTDIR/shaders/, samples/dlrm/   read at run time, found from the bundle (src/util/package-files.ts)
//   OUTDIR/node_modules/         only what cannot be inlined: webgpu (its linux-x64 dawn.node),
//                                bufferutil (native, optional for ws) and uplot (read as files)
//   OUTDIR/BUNDLE.json           what was built, from which commit, with which node
//
// esbuild inlines everything else (ws, flatbuffers, commander, ...). Each entry is its own file
// (no code splitting), so a module's `import.meta.url` is the entry's, which is why the benches'
// "am I the main module" checks still work and why package-files.ts walks up to shaders/.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = resolve(process.argv[2] ?? '');
if (!process.argv[2]) { console.error('usage: node scripts/gpu-box/bundle.mjs OUTDIR'); process.exit(2); }
rmSync(out, { recursive: true, force: true });

const entries = {
  hybridps: 'src/cli/main.ts',
  kernels: 'bench/kernels.ts',
  step: 'bench/step.ts',
  probe: 'scripts/gpu-box/probe.ts',
  // Worker threads' modules (src/util/package-files.ts: moduleThread finds them beside the CLI).
  'data-thread-main': 'src/train/data-thread-main.ts',
};
const NATIVE = ['webgpu', 'bufferutil', 'utf-8-validate'];
await build({
  absWorkingDir: repo,
  entryPoints: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, join(repo, v)])),
  outdir: join(out, 'bundle'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: NATIVE,
  // The inlined CommonJS packages call require() for Node built-ins; ESM output needs one.
  banner: { js: "import { createRequire as __hybridpsCreateRequire } from 'node:module'; const require = __hybridpsCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});

const copy = (from, to = from) => cpSync(join(repo, from), join(out, to), { recursive: true });
copy('shaders');
copy('samples/dlrm');

// Packages kept as files, with only what runs on linux-x64.
const nm = (p) => join('node_modules', p);
for (const f of ['package.json', 'index.js', 'LICENSE.md', 'dist/linux-x64/dawn.node']) copy(nm(`webgpu/${f}`));
for (const f of ['package.json', 'index.js', 'fallback.js', 'LICENSE', 'prebuilds/linux-x64']) copy(nm(`bufferutil/${f}`));
copy(nm('node-gyp-build'));
for (const f of ['package.json', 'LICENSE', 'dist']) copy(nm(`uplot/${f}`));

const git = (...a) => { try { return execFileSync('git', a, { cwd: repo, encoding: 'utf8' }).trim(); } catch { return null; } };
const size = (p) => statSync(join(out, p)).size;
const info = {
  builtAt: new Date().toISOString(),
  commit: git('rev-parse', 'HEAD'),
  dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
  node: process.version,
  version: JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version,
  entries: Object.fromEntries(Object.keys(entries).map((k) => [k, { from: entries[k], bytes: size(`bundle/${k}.mjs`) }])),
  dawnNodeBytes: size(nm('webgpu/dist/linux-x64/dawn.node')),
};
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'BUNDLE.json'), JSON.stringify(info, null, 2) + '\n');
console.log(`[bundle] ${out}: ${Object.entries(info.entries).map(([k, e]) => `${k}.mjs ${(e.bytes / 1024).toFixed(0)} KiB`).join(', ')}`);
