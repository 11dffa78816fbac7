// Building and compiling small WebAssembly modules by hand, with no toolchain: the sections of a
// module whose functions read and write one imported memory ("m" "mem"), and the opcodes the
// project's kernels use (scalar f32, i32 and 128-bit SIMD). Used by the allreduce's SIMD add and
// the servers' optimizer kernels; each writes its function bodies as bytes with these helpers.

// Node has WebAssembly; this project's TypeScript libs (no DOM) do not declare it.
export interface WasmMemory { buffer: ArrayBuffer; grow(pages: number): number }
interface Wasm {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (d: { initial: number; maximum: number; shared?: boolean }) => WasmMemory;
}
const WA = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

/** Value types. */
export const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (i32.const immediates). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) { out.push(byte); return out; }
    out.push(byte | 0x80);
  }
}

const simd = (op: number) => [0xfd, ...uleb(op)];
/** Opcodes (with their immediates where they take fixed ones). Loads and stores: align 2^2 or 2^4, offset 0. */
export const op = {
  block: [0x02, 0x40], loop: [0x03, 0x40], end: [0x0b], br: (depth: number) => [0x0c, depth], brIf: (depth: number) => [0x0d, depth],
  get: (i: number) => [0x20, ...uleb(i)], set: (i: number) => [0x21, ...uleb(i)], tee: (i: number) => [0x22, ...uleb(i)],
  i32: (n: number) => [0x41, ...sleb(n)], i32Eqz: [0x45], i32LtU: [0x49], i32GeU: [0x4f], i32Add: [0x6a], i32Sub: [0x6b], i32Mul: [0x6c],
  i32Load: [0x28, 0x02, 0x00],
  f32Load: [0x2a, 0x02, 0x00], f32Store: [0x38, 0x02, 0x00],
  f32Sqrt: [0x91], f32Add: [0x92], f32Sub: [0x93], f32Mul: [0x94], f32Div: [0x95],
  v128Load: [...simd(0x00), 0x04, 0x00], v128Store: [...simd(0x0b), 0x04, 0x00], f32x4Splat: simd(0x13),
  f32x4Sqrt: simd(0xe3), f32x4Add: simd(0xe4), f32x4Sub: simd(0xe5), f32x4Mul: simd(0xe6), f32x4Div: simd(0xe7),
  /** memory.copy (bulk memory) within the one memory: [dst, src, bytes] on the stack. */
  memoryCopy: [0xfc, 0x0a, 0x00, 0x00],
};

export interface WasmFunc {
  name: string;
  params: number[];
  /** Result types (none when absent). */
  results?: number[];
  /** Local types after the parameters, in index order. */
  locals?: number[];
  /** The body's instructions, without the local declarations or the final `end`. */
  body: number[];
}

const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, bytes: number[]) => [id, ...uleb(bytes.length), ...bytes];
const name = (s: string) => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

/**
 * A module importing one memory as ("m", "mem") with at least one page, exporting `funcs`.
 * `shared`: the import is a shared memory of up to MAX_PAGES (one that grows without detaching
 * the views on it: newSharedMemory).
 */
export function buildModule(funcs: WasmFunc[], shared = false): Uint8Array {
  const locals = (types: number[]) => {
    const runs: number[][] = [];
    for (let i = 0; i < types.length;) {
      let j = i;
      while (j < types.length && types[j] === types[i]) j++;
      runs.push([...uleb(j - i), types[i]!]);
      i = j;
    }
    return vec(runs);
  };
  const code = funcs.map((f) => { const b = [...locals(f.locals ?? []), ...f.body, ...op.end]; return [...uleb(b.length), ...b]; });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(funcs.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec((f.results ?? []).map((r) => [r]))]))),
    ...section(2, vec([[...name('m'), ...name('mem'), 0x02, ...(shared ? [0x03, 0x01, ...uleb(MAX_PAGES)] : [0x00, 0x01])]])),
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(7, vec(funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(code)),
  ]);
}

/** The compiled module, or null where this Node cannot run it (no WASM SIMD): callers keep a JS path. */
export function compileModule(bytes: Uint8Array): object | null {
  try { return WA.validate(bytes) ? new WA.Module(bytes) : null; } catch { return null; }
}

/** WASM pages are 64 KiB; a (32-bit) memory has at most 65536 of them, 4 GiB. */
export const PAGE_BYTES = 65536, MAX_PAGES = 65536;

/**
 * A memory of `bytes` (rounded up to pages). Without `maxBytes` it cannot grow, so views on it
 * stay valid; with it, grow() detaches the old buffer and views must be made again.
 */
export function newMemory(bytes: number, maxBytes?: number): WasmMemory {
  const pages = Math.max(1, Math.ceil(bytes / PAGE_BYTES));
  return new WA.Memory({ initial: pages, maximum: maxBytes === undefined ? pages : Math.min(MAX_PAGES, Math.ceil(maxBytes / PAGE_BYTES)) });
}

/**
 * A shared memory of `bytes` (rounded up to pages) that can grow to 4 GiB. Growing it never
 * detaches or moves what is there (the address range is reserved up front), so views made before
 * a grow() stay valid; `buffer` is a new SharedArrayBuffer object after each grow. Null where this
 * Node has no shared WebAssembly memory.
 */
export function newSharedMemory(bytes: number): WasmMemory | null {
  try {
    return new WA.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE_BYTES)), maximum: MAX_PAGES, shared: true });
  } catch { return null; }
}

/** The exported functions of `module` run over `memory`. */
export function instantiate(module: object, memory: WasmMemory): Record<string, unknown> {
  return new WA.Instance(module, { m: { mem: memory } }).exports;
}
