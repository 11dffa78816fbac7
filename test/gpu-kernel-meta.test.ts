// The kernel header parser and the @workgroups formula language (no device needed).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseKernelMeta, workgroupCounts, evalFormula, splitExpressions, packParams } from '../src/gpu/kernel-meta.ts';
import { DEFAULT_SHADER_DIR } from '../src/gpu/kernel-registry.ts';

const header = `// @kernel linear_fwd
// @doc Y[M,N] = act(X[M,K] * W[N,K]^T + b[N])
// @param M u32
// @param N u32
// @param K u32
// @param relu u32
// @binding 1 x read f32
// @binding 2 w read f32
// @binding 3 b read f32
// @binding 4 y write f32
// @workgroups ceil(N/64) ceil(M/64) 1

struct Params { M: u32, N: u32, K: u32, relu: u32 }
`;

const parse = suite('parseKernelMeta');

parse('reads name, doc, params, bindings and workgroups', () => {
  const m = parseKernelMeta(header, 'linear_fwd.wgsl');
  assert.is(m.name, 'linear_fwd');
  assert.is(m.doc, 'Y[M,N] = act(X[M,K] * W[N,K]^T + b[N])');
  assert.equal(m.params.map((p) => `${p.name}:${p.type}`), ['M:u32', 'N:u32', 'K:u32', 'relu:u32']);
  assert.equal(m.bindings.map((b) => [b.binding, b.name, b.access, b.elem]), [[1, 'x', 'read', 'f32'], [2, 'w', 'read', 'f32'], [3, 'b', 'read', 'f32'], [4, 'y', 'write', 'f32']]);
  assert.equal(m.workgroups, ['ceil(N/64)', 'ceil(M/64)', '1']);
  assert.is(m.paramBytes, 16);
});

parse('params with defaults, f32 and padding to 16 bytes', () => {
  const m = parseKernelMeta('// @kernel k\n// @param n u32\n// @param lr f32 = 0.5\n// @param eps f32 = 1e-8\n// @param s i32\n// @param t u32\n// @binding 1 p read_write f32\n// @workgroups ceil(n / 256)\n');
  assert.equal(m.params.map((p) => p.default), [undefined, 0.5, 1e-8, undefined, undefined]);
  assert.is(m.paramBytes, 32);
  const bytes = new DataView(packParams(m, { n: 7, s: -3, t: 1 }));
  assert.is(bytes.getUint32(0, true), 7);
  assert.is(bytes.getFloat32(4, true), 0.5);
  assert.ok(Math.abs(bytes.getFloat32(8, true) - 1e-8) < 1e-15);
  assert.is(bytes.getInt32(12, true), -3);
  assert.equal(workgroupCounts(m, { n: 1000, s: 0, t: 0 }), [4, 1, 1]);
});

parse('the header ends at the first non-comment line', () => {
  const m = parseKernelMeta('// @kernel a\n// @param n u32\nfn f() {}\n// @param late u32\n');
  assert.equal(m.params.map((p) => p.name), ['n']);
});

parse('errors name the file and line', () => {
  assert.throws(() => parseKernelMeta('// @kernel a\n// @param n u64\n', 'a.wgsl'), /a\.wgsl:2: @param/);
  assert.throws(() => parseKernelMeta('// @kernel a\n// @binding 2 x read f32\n', 'a.wgsl'), /a\.wgsl:2: .*out of order/);
  assert.throws(() => parseKernelMeta('// @kernel a\n// @bogus x\n', 'a.wgsl'), /a\.wgsl:2: unknown header tag @bogus/);
  assert.throws(() => parseKernelMeta('// just a comment\n', 'a.wgsl'), /a\.wgsl:1: missing "\/\/ @kernel NAME"/);
  assert.throws(() => parseKernelMeta('// @kernel a\n// @param n u32\n// @workgroups ceil(m/4)\n', 'a.wgsl'), /uses "m", which is not a @param/);
  assert.throws(() => parseKernelMeta('// @kernel a\n// @workgroups 1 1 1 1\n', 'a.wgsl'), /a\.wgsl:2: @workgroups: needs 1 to 3/);
  assert.throws(() => parseKernelMeta('// @kernel a\n// @workgroups (1\n', 'a.wgsl'), /a\.wgsl:2: @workgroups/);
});

parse('packParams rejects unknown, missing and non-integer values', () => {
  const m = parseKernelMeta(header);
  assert.throws(() => packParams(m, { M: 1, N: 1, K: 1 }), /missing param "relu"/);
  assert.throws(() => packParams(m, { M: 1, N: 1, K: 1, relu: 0, Q: 2 }), /unknown param "Q"/);
  assert.throws(() => packParams(m, { M: 1.5, N: 1, K: 1, relu: 0 }), /must be an integer/);
  assert.throws(() => packParams(m, { M: -1, N: 1, K: 1, relu: 0 }), /out of u32 range/);
  const v = new DataView(packParams(m, { M: 3, N: 4, K: 5, relu: true }));
  assert.equal([0, 4, 8, 12].map((o) => v.getUint32(o, true)), [3, 4, 5, 1]);
});

const formula = suite('workgroup formulas');

formula('arithmetic, precedence and functions', () => {
  const s = { N: 100, M: 7, T: 26 };
  assert.is(evalFormula('ceil(N/64)', s), 2);
  assert.is(evalFormula('floor(N / 64)', s), 1);
  assert.is(evalFormula('1 + 2 * 3', s), 7);
  assert.is(evalFormula('(1 + 2) * 3', s), 9);
  assert.is(evalFormula('T+1', s), 27);
  assert.is(evalFormula('min(M, 65535)', s), 7);
  assert.is(evalFormula('max(ceil(M/4), 3) - -1', s), 4);
  assert.is(evalFormula('N - M - 1', s), 92);
  assert.is(evalFormula('N / 4 / 5', s), 5);
});

formula('splitting a line into up to three expressions', () => {
  assert.equal(splitExpressions('ceil(N/64) ceil(M / 64) 1'), ['ceil(N/64)', 'ceil(M/64)', '1']);
  assert.equal(splitExpressions('min(B, 65535)'), ['min(B,65535)']);
  assert.equal(splitExpressions('N - 1 T+1'), ['N-1', 'T+1']);
  assert.equal(splitExpressions('ceil(D/64), T+1, min(B,65535)'), ['ceil(D/64)', 'T+1', 'min(B,65535)']);
});

formula('counts must be non-negative integers; zero is allowed', () => {
  const m = parseKernelMeta('// @kernel a\n// @param n u32\n// @workgroups n/4\n');
  assert.equal(workgroupCounts(m, { n: 8 }), [2, 1, 1]);
  assert.equal(workgroupCounts(m, { n: 0 }), [0, 1, 1]);
  assert.throws(() => workgroupCounts(m, { n: 6 }), /gives 1\.5; use ceil\(\)/);
  assert.throws(() => evalFormula('n/0', { n: 1 }), /division by zero/);
  assert.throws(() => evalFormula('n $ 1', { n: 1 }), /unexpected character/);
});

const shipped = suite('shipped kernels');

shipped('every shaders/*.wgsl has a valid header matching its file name and a Params struct in order', () => {
  const files = readdirSync(DEFAULT_SHADER_DIR).filter((f) => f.endsWith('.wgsl'));
  assert.ok(files.length >= 15, `found ${files.length} kernels`);
  for (const f of files) {
    const src = readFileSync(join(DEFAULT_SHADER_DIR, f), 'utf8');
    const m = parseKernelMeta(src, f);
    assert.is(m.name, f.slice(0, -5), f);
    assert.ok(m.doc.length > 0, `${f} has @doc`);
    assert.ok(m.workgroups.length > 0, `${f} has @workgroups`);
    const struct = /struct Params \{([^}]*)\}/.exec(src);
    assert.ok(struct, `${f} declares struct Params`);
    const fields = struct![1].split(',').map((x) => x.trim()).filter(Boolean).map((x) => x.replace(/\s+/g, ''));
    assert.equal(fields, m.params.map((p) => `${p.name}:${p.type}`), `${f}: Params fields follow the @param lines`);
    for (const b of m.bindings) {
      const decl = new RegExp(`@binding\\(${b.binding}\\)\\s+var<storage,\\s*(read|read_write)>\\s+${b.name}\\s*:`).exec(src);
      assert.ok(decl, `${f}: binding ${b.binding} declared as ${b.name}`);
      assert.is(decl![1] === 'read', b.access === 'read', `${f}: ${b.name} access matches`);
    }
    assert.match(src, /@group\(0\) @binding\(0\) var<uniform> p: Params;/, `${f}: params at binding 0`);
  }
});

shipped('function-scope vars have explicit initializers (Dawn 0.6.2 does not re-zero `var x: T;` declared in a loop)', () => {
  for (const f of readdirSync(DEFAULT_SHADER_DIR).filter((x) => x.endsWith('.wgsl'))) {
    const src = readFileSync(join(DEFAULT_SHADER_DIR, f), 'utf8');
    const bare = /^\s+var\s+\w+\s*:[^=;]*;/m.exec(src);
    assert.not.ok(bare, `${f}: "${bare?.[0].trim()}" needs an initializer`);
  }
});

parse.run();
formula.run();
shipped.run();
