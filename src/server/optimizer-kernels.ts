// The built-in optimizers' element-wise updates as WebAssembly SIMD kernels (f32x4 add, sub, mul,
// div, sqrt), compiled once per process. Each kernel is written once as a small expression list
// and emitted twice inside a loop over a list of rows: a 4-lane loop and a scalar loop for the
// tail (row widths need not be multiples of 4). Every operation is a correctly rounded float32 operation, in the order the JS reference
// updates of optimizers.ts use (each step wrapped in Math.fround), so the two agree bit for bit.
// Why: V8 runs the JS loop's sqrt and divide in float64 one element at a time; AdaGrad cost ~7 ms
// more a 4096 x 64 push than SGD (bench/RESULTS.md, 2026-12-02).
import { buildModule, compileModule, F32, I32, op, V128 } from '../util/wasm-module.ts';

/** An expression over the kernel's arrays (by pointer index), f32 parameters and temporaries. */
type Expr =
  | { load: number } | { par: number } | { tmp: number }
  | { o: 'add' | 'sub' | 'mul' | 'div'; a: Expr; b: Expr } | { sqrt: Expr };
/** `let` a temporary, or store into an array (at the current element). */
type Stmt = { let: number; e: Expr } | { store: number; e: Expr };

export interface KernelDef {
  name: string;
  /** Arrays the kernel reads or writes: the row, the gradient, then the optimizer's slots. */
  arrays: number;
  /** f32 parameters (hyperparameters), after the arrays and the element count. */
  scalars: number;
  temps: number;
  stmts: Stmt[];
}

const L = (p: number): Expr => ({ load: p });
const P = (i: number): Expr => ({ par: i });
const T = (i: number): Expr => ({ tmp: i });
const add = (a: Expr, b: Expr): Expr => ({ o: 'add', a, b });
const sub = (a: Expr, b: Expr): Expr => ({ o: 'sub', a, b });
const mul = (a: Expr, b: Expr): Expr => ({ o: 'mul', a, b });
const div = (a: Expr, b: Expr): Expr => ({ o: 'div', a, b });
const sqrt = (a: Expr): Expr => ({ sqrt: a });

/**
 * Arrays: 0 the row, 1 the gradient, 2.. the slots; scalars in the order `WasmRows` passes them.
 * The JS references (optimizers.ts) compute the same expressions in the same order.
 */
export const KERNELS: Record<string, KernelDef> = {
  // w = w - lr * g
  sgd: { name: 'sgd', arrays: 2, scalars: 1, temps: 0, stmts: [{ store: 0, e: sub(L(0), mul(P(0), L(1))) }] },
  // w = w - lr * (g + wd * w)
  sgd_wd: { name: 'sgd_wd', arrays: 2, scalars: 2, temps: 0, stmts: [{ store: 0, e: sub(L(0), mul(P(0), add(L(1), mul(P(1), L(0))))) }] },
  // a = acc + g * g; acc = a; w = w - (lr * g) / (sqrt(a) + eps)
  adagrad: {
    name: 'adagrad', arrays: 3, scalars: 2, temps: 1,
    stmts: [
      { let: 0, e: add(L(2), mul(L(1), L(1))) },
      { store: 2, e: T(0) },
      { store: 0, e: sub(L(0), div(mul(P(0), L(1)), add(sqrt(T(0)), P(1)))) },
    ],
  },
  // scalars: b1, 1 - b1, b2, 1 - b2, bc1, bc2, lr, eps.
  // m' = b1 m + (1-b1) g; v' = b2 v + ((1-b2) g) g; w = w - (lr (m'/bc1)) / (sqrt(v'/bc2) + eps)
  adam: {
    name: 'adam', arrays: 4, scalars: 8, temps: 2,
    stmts: [
      { let: 0, e: add(mul(P(0), L(2)), mul(P(1), L(1))) },
      { let: 1, e: add(mul(P(2), L(3)), mul(mul(P(3), L(1)), L(1))) },
      { store: 2, e: T(0) },
      { store: 3, e: T(1) },
      { store: 0, e: sub(L(0), div(mul(P(6), div(T(0), P(4))), add(sqrt(div(T(1), P(5))), P(7)))) },
    ],
  },
};

const VEC = { add: op.f32x4Add, sub: op.f32x4Sub, mul: op.f32x4Mul, div: op.f32x4Div, sqrt: op.f32x4Sqrt, load: op.v128Load, store: op.v128Store };
const SCALAR = { add: op.f32Add, sub: op.f32Sub, mul: op.f32Mul, div: op.f32Div, sqrt: op.f32Sqrt, load: op.f32Load, store: op.f32Store };

/**
 * The kernel as a function (rows, count, g, n, scalars...) over `count` rows whose byte offsets
 * are the i32s at `rows`: array 0 is the row (n floats at its offset), array 1 the gradient (n
 * floats from `g`, the next row's following on), array k >= 2 the row's slot k - 2, stored right
 * after the row (at offset + (k - 1) * n * 4: the store interleaves a row with its slots). Rows
 * are updated in order, in place, so a row given twice is updated twice, as the JS loop does.
 * Locals: the arrays' pointers, the element count left, the 4-lane temporaries, the scalar
 * temporaries, the scalars splatted to 4 lanes.
 */
function emit(k: KernelDef): { name: string; params: number[]; locals: number[]; body: number[] } {
  const ROWS = 0, COUNT = 1, G = 2, N = 3, par = 4;
  const arr = par + k.scalars, left = arr + k.arrays, vtmp = left + 1, ftmp = vtmp + k.temps, splat = ftmp + k.temps;
  const code = (lanes: 4 | 1, e: Expr): number[] => {
    const ops = lanes === 4 ? VEC : SCALAR;
    if ('load' in e) return [...op.get(arr + e.load), ...ops.load];
    if ('par' in e) return op.get((lanes === 4 ? splat : par) + e.par);
    if ('tmp' in e) return op.get((lanes === 4 ? vtmp : ftmp) + e.tmp);
    if ('sqrt' in e) return [...code(lanes, e.sqrt), ...ops.sqrt];
    return [...code(lanes, e.a), ...code(lanes, e.b), ...ops[e.o]];
  };
  const stmt = (lanes: 4 | 1, s: Stmt): number[] => ('let' in s
    ? [...code(lanes, s.e), ...op.set((lanes === 4 ? vtmp : ftmp) + s.let)]
    : [...op.get(arr + s.store), ...code(lanes, s.e), ...(lanes === 4 ? VEC : SCALAR).store]);
  const bump = (local: number, by: number) => [...op.get(local), ...op.i32(by), ...op.i32Add, ...op.set(local)];
  const loop = (lanes: 4 | 1) => [
    ...op.block, ...op.loop,
    ...op.get(left), ...(lanes === 4 ? [...op.i32(4), ...op.i32LtU] : op.i32Eqz), ...op.brIf(1),
    ...k.stmts.flatMap((s) => stmt(lanes, s)),
    ...Array.from({ length: k.arrays }, (_, i) => bump(arr + i, 4 * lanes)).flat(), ...bump(left, -lanes),
    ...op.br(0), ...op.end, ...op.end,
  ];
  // Per row: the row's pointer from the list, its slots after it, the gradient where the last row's ended.
  const row = [
    ...op.get(ROWS), ...op.i32Load, ...op.set(arr),
    ...op.get(G), ...op.set(arr + 1),
    ...Array.from({ length: k.arrays - 2 }, (_, i) => [...op.get(arr), ...op.get(N), ...op.i32(4 * (i + 1)), ...op.i32Mul, ...op.i32Add, ...op.set(arr + 2 + i)]).flat(),
    ...op.get(N), ...op.set(left),
    ...loop(4), ...loop(1),
    ...op.get(arr + 1), ...op.set(G),
    ...bump(ROWS, 4), ...bump(COUNT, -1),
  ];
  const splats = Array.from({ length: k.scalars }, (_, i) => [...op.get(par + i), ...op.f32x4Splat, ...op.set(splat + i)]).flat();
  return {
    name: k.name,
    params: [I32, I32, I32, I32, ...new Array<number>(k.scalars).fill(F32)],
    locals: [...new Array<number>(k.arrays + 1).fill(I32), ...new Array<number>(k.temps).fill(V128), ...new Array<number>(k.temps).fill(F32), ...new Array<number>(k.scalars).fill(V128)],
    body: [...splats, ...op.block, ...op.loop, ...op.get(COUNT), ...op.i32Eqz, ...op.brIf(1), ...row, ...op.br(0), ...op.end, ...op.end],
  };
}

/**
 * `gather(rows, count, dst, bytes)`: the `count` rows whose byte offsets are the i32s at `rows`,
 * `bytes` each, copied one after the other to `dst` (one memory.copy a row: a memcpy). A pull's
 * rows go through it into the scratch and from there into the reply frame in one set() a chunk.
 * Against the JS word loop it replaced, 4096 random rows of a 1M x 64 AdaGrad table: 1.30 -> 1.08
 * ms a pull, 0.78 -> 0.50 ms with the rows in cache (bench/RESULTS.md, 2026-12-02 session 8).
 */
function gatherFunc(): { name: string; params: number[]; locals: number[]; body: number[] } {
  const ROWS = 0, COUNT = 1, DST = 2, BYTES = 3;
  const bump = (local: number, by: number[]) => [...op.get(local), ...by, ...op.i32Add, ...op.set(local)];
  return {
    name: 'gather', params: [I32, I32, I32, I32], locals: [],
    body: [
      ...op.block, ...op.loop, ...op.get(COUNT), ...op.i32Eqz, ...op.brIf(1),
      ...op.get(DST), ...op.get(ROWS), ...op.i32Load, ...op.get(BYTES), ...op.memoryCopy,
      ...bump(DST, op.get(BYTES)), ...bump(ROWS, op.i32(4)), ...bump(COUNT, op.i32(-1)),
      ...op.br(0), ...op.end, ...op.end,
    ],
  };
}

/**
 * `touch(rows, count, bytes) -> i32`: loads one word of every 64-byte line of the `count` spans
 * of `bytes` at the byte offsets that are the i32s at `rows` (and each span's last word), and
 * returns their sum (so the loads are kept). Random rows of a large table miss every cache level
 * and the TLB; a loop this tight (about five instructions a line) keeps a dozen rows' misses in
 * flight at once, where the kernel that then updates or copies them row by row stalls on each in
 * turn. WebAssembly has no prefetch instruction: this loop is its stand-in. Measured in C on this
 * machine (4096 random rows of 1M x 512 B, an AdaGrad update, a pass over each 64 rows first):
 * 405 -> 148 ns a row; a 256-byte row copy 135 -> 80 ns (bench/RESULTS.md, session 14).
 */
function touchFunc(): { name: string; params: number[]; results: number[]; locals: number[]; body: number[] } {
  const ROWS = 0, COUNT = 1, BYTES = 2, ACC = 3, P = 4, Q = 5;
  const bump = (local: number, by: number) => [...op.get(local), ...op.i32(by), ...op.i32Add, ...op.set(local)];
  const addLoad = (addr: number[]) => [...addr, ...op.i32Load, ...op.get(ACC), ...op.i32Add, ...op.set(ACC)];
  return {
    name: 'touch', params: [I32, I32, I32], results: [I32], locals: [I32, I32, I32],
    body: [
      ...op.block, ...op.loop, ...op.get(COUNT), ...op.i32Eqz, ...op.brIf(1),
      ...op.get(ROWS), ...op.i32Load, ...op.tee(P), ...op.get(BYTES), ...op.i32Add, ...op.set(Q),
      ...addLoad([...op.get(Q), ...op.i32(4), ...op.i32Sub]),
      ...op.block, ...op.loop, ...op.get(P), ...op.get(Q), ...op.i32GeU, ...op.brIf(1),
      ...addLoad(op.get(P)), ...bump(P, 64), ...op.br(0), ...op.end, ...op.end,
      ...bump(ROWS, 4), ...bump(COUNT, -1),
      ...op.br(0), ...op.end, ...op.end,
      ...op.get(ACC),
    ],
  };
}

let compiled: object | null | undefined;
/** The module of every kernel and the row gather, or null where this Node has no WASM SIMD (the JS updates and copies run then). */
export function kernelModule(): object | null {
  if (compiled === undefined) compiled = compileModule(buildModule([...Object.values(KERNELS).map(emit), gatherFunc(), touchFunc()]));
  return compiled;
}
