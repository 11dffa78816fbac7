// The machine-readable header every shaders/<name>.wgsl starts with, and the small expression
// language of its @workgroups line. The model-graph executor and the dispatcher both read it.
//
//   // @kernel linear_fwd
//   // @doc Y[M,N] = act(X[M,K] * W[N,K]^T + b[N])
//   // @param M u32
//   // @param lr f32 = 0.01          (optional default)
//   // @binding 1 x read f32
//   // @binding 4 y write f32
//   // @workgroups ceil(N/64) ceil(M/64) 1
//
// Binding 0 is always `var<uniform> p: Params` with the @param fields in order (4 bytes each).

export type ParamType = 'u32' | 'i32' | 'f32';
export type BindingAccess = 'read' | 'write' | 'read_write';

export interface KernelParam {
  name: string;
  type: ParamType;
  default?: number;
}

export interface KernelBinding {
  binding: number;
  name: string;
  access: BindingAccess;
  /** Element type as written in the header (f32, u32, i32, ...); informational. */
  elem: string;
}

export interface KernelMeta {
  name: string;
  doc: string;
  params: KernelParam[];
  bindings: KernelBinding[];
  /** Up to three expressions (x, y, z); missing ones are 1. Empty: counts must be given explicitly. */
  workgroups: string[];
  /** Bytes of the Params struct as bound (a multiple of 16, at least 16). */
  paramBytes: number;
}

export class KernelMetaError extends Error {}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses the leading comment block of a WGSL file. `file` only decorates error messages. */
export function parseKernelMeta(source: string, file = '<source>'): KernelMeta {
  const meta: KernelMeta = { name: '', doc: '', params: [], bindings: [], workgroups: [], paramBytes: 16 };
  const lines = source.split(/\r?\n/);
  const fail = (line: number, msg: string): never => {
    throw new KernelMetaError(`${file}:${line}: ${msg}`);
  };
  let sawKernel = false;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '') continue;
    if (!raw.startsWith('//')) break; // header ends at the first non-comment line
    const body = raw.slice(2).trim();
    if (!body.startsWith('@')) continue;
    const m = /^@(\w+)\s*(.*)$/.exec(body);
    if (!m) continue;
    const [, tag, rest] = m;
    const lineNo = i + 1;
    switch (tag) {
      case 'kernel':
        if (!IDENT.test(rest)) fail(lineNo, `@kernel needs a name, got "${rest}"`);
        meta.name = rest;
        sawKernel = true;
        break;
      case 'doc':
        meta.doc = meta.doc ? `${meta.doc}\n${rest}` : rest;
        break;
      case 'param': {
        const pm = /^([A-Za-z_]\w*)\s+(u32|i32|f32)(?:\s*=\s*(\S+))?$/.exec(rest);
        if (!pm) fail(lineNo, `@param must be "NAME u32|i32|f32 [= default]", got "${rest}"`);
        const [, name, type, def] = pm!;
        if (meta.params.some((p) => p.name === name)) fail(lineNo, `duplicate @param ${name}`);
        const p: KernelParam = { name, type: type as ParamType };
        if (def !== undefined) {
          const v = Number(def);
          if (!Number.isFinite(v)) fail(lineNo, `@param ${name} default "${def}" is not a number`);
          p.default = v;
        }
        meta.params.push(p);
        break;
      }
      case 'binding': {
        const bm = /^(\d+)\s+([A-Za-z_]\w*)\s+(read|write|read_write)(?:\s+(\w+))?$/.exec(rest);
        if (!bm) fail(lineNo, `@binding must be "N name read|write|read_write [type]", got "${rest}"`);
        const binding = Number(bm![1]);
        const expected = meta.bindings.length + 1;
        if (binding !== expected) fail(lineNo, `@binding ${binding} out of order: storage bindings are numbered 1, 2, ... (expected ${expected})`);
        if (meta.bindings.some((b) => b.name === bm![2])) fail(lineNo, `duplicate @binding name ${bm![2]}`);
        meta.bindings.push({ binding, name: bm![2], access: bm![3] as BindingAccess, elem: bm![4] ?? 'f32' });
        break;
      }
      case 'workgroups': {
        try {
          const exprs = splitExpressions(rest);
          if (exprs.length < 1 || exprs.length > 3) throw new Error(`needs 1 to 3 expressions, got ${exprs.length}`);
          meta.workgroups = exprs;
        } catch (e) {
          fail(lineNo, `@workgroups: ${(e as Error).message}`);
        }
        break;
      }
      default:
        fail(lineNo, `unknown header tag @${tag}`);
    }
  }
  if (!sawKernel) fail(1, 'missing "// @kernel NAME" header line');
  const names = new Set(meta.params.map((p) => p.name));
  for (const e of meta.workgroups) {
    for (const id of parseExpr(e).identifiers()) {
      if (!names.has(id)) throw new KernelMetaError(`${file}: @workgroups uses "${id}", which is not a @param`);
    }
  }
  meta.paramBytes = Math.max(16, Math.ceil((meta.params.length * 4) / 16) * 16);
  return meta;
}

/** Packs a params object into the bytes of the Params uniform struct; missing params throw. */
export function packParams(meta: KernelMeta, values: Record<string, number | boolean>, out?: DataView): ArrayBuffer {
  const buf = out ? (out.buffer as ArrayBuffer) : new ArrayBuffer(meta.paramBytes);
  const view = out ?? new DataView(buf);
  for (const k of Object.keys(values)) {
    if (!meta.params.some((p) => p.name === k)) throw new Error(`kernel ${meta.name}: unknown param "${k}" (has ${meta.params.map((p) => p.name).join(', ') || 'none'})`);
  }
  meta.params.forEach((p, i) => {
    let v = values[p.name] ?? p.default;
    if (v === undefined) throw new Error(`kernel ${meta.name}: missing param "${p.name}"`);
    if (typeof v === 'boolean') v = v ? 1 : 0;
    const at = i * 4;
    if (p.type === 'f32') view.setFloat32(at, v, true);
    else {
      if (!Number.isInteger(v)) throw new Error(`kernel ${meta.name}: param ${p.name} (${p.type}) must be an integer, got ${v}`);
      if (p.type === 'u32') {
        if (v < 0 || v > 0xffffffff) throw new Error(`kernel ${meta.name}: param ${p.name}=${v} out of u32 range`);
        view.setUint32(at, v, true);
      } else view.setInt32(at, v, true);
    }
  });
  return buf;
}

/** Resolves param values including header defaults (for formulas). */
export function resolveParams(meta: KernelMeta, values: Record<string, number | boolean>): Record<string, number> {
  const r: Record<string, number> = {};
  for (const p of meta.params) {
    const v = values[p.name] ?? p.default;
    if (v === undefined) throw new Error(`kernel ${meta.name}: missing param "${p.name}"`);
    r[p.name] = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  }
  return r;
}

/** Evaluates the @workgroups formula; every count must come out a non-negative integer. */
export function workgroupCounts(meta: KernelMeta, values: Record<string, number | boolean>): [number, number, number] {
  if (meta.workgroups.length === 0) throw new Error(`kernel ${meta.name} has no @workgroups formula: pass workgroup counts explicitly`);
  const scope = resolveParams(meta, values);
  const out: [number, number, number] = [1, 1, 1];
  meta.workgroups.forEach((e, i) => {
    const v = evalFormula(e, scope);
    if (!Number.isInteger(v) || v < 0) throw new Error(`kernel ${meta.name}: workgroup count ${'xyz'[i]} = "${e}" gives ${v}; use ceil() or floor() for a non-negative integer`);
    out[i] = v;
  });
  return out;
}

// ---- formula language: numbers, params, + - * / ( ), ceil floor min max ----

type Tok = { kind: 'num'; value: number } | { kind: 'id'; value: string } | { kind: 'op'; value: string };

function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) { i++; continue; }
    const num = /^(\d+(\.\d+)?([eE][+-]?\d+)?)/.exec(src.slice(i));
    if (num) { toks.push({ kind: 'num', value: Number(num[1]) }); i += num[1].length; continue; }
    const id = /^[A-Za-z_]\w*/.exec(src.slice(i));
    if (id) { toks.push({ kind: 'id', value: id[0] }); i += id[0].length; continue; }
    if ('+-*/(),'.includes(c)) { toks.push({ kind: 'op', value: c }); i++; continue; }
    throw new Error(`unexpected character "${c}" in "${src}"`);
  }
  return toks;
}

interface Expr {
  eval(scope: Record<string, number>): number;
  identifiers(): string[];
}

const FUNCS: Record<string, { arity: number; fn: (...a: number[]) => number }> = {
  ceil: { arity: 1, fn: Math.ceil },
  floor: { arity: 1, fn: Math.floor },
  min: { arity: 2, fn: Math.min },
  max: { arity: 2, fn: Math.max },
};

class Parser {
  pos = 0;
  constructor(readonly toks: Tok[], readonly src: string) {}
  peek(): Tok | undefined { return this.toks[this.pos]; }
  isOp(v: string): boolean { const t = this.peek(); return t?.kind === 'op' && t.value === v; }
  expect(v: string): void {
    if (!this.isOp(v)) throw new Error(`expected "${v}" in "${this.src}"`);
    this.pos++;
  }
  // expr := term (('+'|'-') term)*
  expr(): Expr {
    let left = this.term();
    while (this.isOp('+') || this.isOp('-')) {
      const op = (this.toks[this.pos++] as { value: string }).value;
      const a = left, b = this.term();
      left = bin(a, b, op === '+' ? (x, y) => x + y : (x, y) => x - y);
    }
    return left;
  }
  term(): Expr {
    let left = this.unary();
    while (this.isOp('*') || this.isOp('/')) {
      const op = (this.toks[this.pos++] as { value: string }).value;
      const a = left, b = this.unary();
      left = bin(a, b, op === '*' ? (x, y) => x * y : (x, y) => {
        if (y === 0) throw new Error(`division by zero in "${this.src}"`);
        return x / y;
      });
    }
    return left;
  }
  unary(): Expr {
    if (this.isOp('-')) { this.pos++; const a = this.unary(); return { eval: (s) => -a.eval(s), identifiers: () => a.identifiers() }; }
    return this.primary();
  }
  primary(): Expr {
    const t = this.toks[this.pos++];
    if (!t) throw new Error(`unexpected end of "${this.src}"`);
    if (t.kind === 'num') return { eval: () => t.value, identifiers: () => [] };
    if (t.kind === 'op' && t.value === '(') { const e = this.expr(); this.expect(')'); return e; }
    if (t.kind === 'id') {
      const f = FUNCS[t.value];
      if (f && this.isOp('(')) {
        this.pos++;
        const args: Expr[] = [this.expr()];
        while (this.isOp(',')) { this.pos++; args.push(this.expr()); }
        this.expect(')');
        if (args.length !== f.arity) throw new Error(`${t.value}() takes ${f.arity} argument(s) in "${this.src}"`);
        return { eval: (s) => f.fn(...args.map((a) => a.eval(s))), identifiers: () => args.flatMap((a) => a.identifiers()) };
      }
      const name = t.value;
      return {
        eval: (s) => {
          const v = s[name];
          if (v === undefined) throw new Error(`unknown name "${name}" in "${this.src}"`);
          return v;
        },
        identifiers: () => [name],
      };
    }
    throw new Error(`unexpected "${t.value}" in "${this.src}"`);
  }
}

function bin(a: Expr, b: Expr, f: (x: number, y: number) => number): Expr {
  return { eval: (s) => f(a.eval(s), b.eval(s)), identifiers: () => [...a.identifiers(), ...b.identifiers()] };
}

/** Splits "ceil(N/64) ceil(M / 64) 1" into its expressions: each one is parsed greedily. */
export function splitExpressions(src: string): string[] {
  const toks = tokenize(src);
  const out: string[] = [];
  const p = new Parser(toks, src);
  while (p.pos < toks.length) {
    const start = p.pos;
    p.expr();
    out.push(renderTokens(toks.slice(start, p.pos)));
    if (p.isOp(',')) p.pos++; // commas between expressions are allowed too
  }
  return out;
}

function renderTokens(toks: Tok[]): string {
  return toks.map((t) => String(t.value)).join('');
}

const exprCache = new Map<string, Expr>();
function parseExpr(src: string): Expr {
  let e = exprCache.get(src);
  if (!e) {
    const p = new Parser(tokenize(src), src);
    e = p.expr();
    if (p.pos !== p.toks.length) throw new Error(`trailing tokens in "${src}"`);
    exprCache.set(src, e);
  }
  return e;
}

/** Evaluates one formula expression with the given variable values. */
export function evalFormula(src: string, scope: Record<string, number>): number {
  return parseExpr(src).eval(scope);
}
