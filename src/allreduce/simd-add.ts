// dst += src with WebAssembly SIMD (f32x4.add), for the ring's reduce steps. V8 does not
// vectorise the JS loop: on this machine it adds 2M floats from a hot 1 MiB source in 4.8 ms
// where a memcpy of the same floats takes 0.43 ms (load ~14, 2026-12-02). WASM can only touch its
// own memory, the process's WasmArena (wasm-arena.ts), which holds the data streams' receive
// buffers (the source, already there). Where the op's buffer is in the arena too
// (allreduceBuffer), the add runs in place; otherwise each 64 KiB block of the destination is
// copied into a scratch block there, added to, and copied back while it is in cache (the copies
// were ~7 of ~43 CPU ms per op and rank at W = 4, 64 MiB). The module is about 100 bytes,
// hand-encoded below with src/util/wasm-module.ts (no toolchain), compiled once per process.
import { buildModule, compileModule, I32, instantiate, op } from '../util/wasm-module.ts';
import { processArena, type WasmArena } from './wasm-arena.ts';
import { addInto } from './local-math.ts';

/** Floats per block of a destination outside the arena copied into it and back (64 KiB: stays in L2). */
const BLOCK = 16 << 10;

// (func (export "add") (param $dst i32) (param $src i32) (param $n i32)   ;; byte offsets; n floats, a multiple of 4
//   (block (loop
//     (br_if 1 (i32.eqz (local.get $n)))
//     (v128.store (local.get $dst) (f32x4.add (v128.load (local.get $dst)) (v128.load (local.get $src))))
//     (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
//     (local.set $src (i32.add (local.get $src) (i32.const 16)))
//     (local.set $n (i32.sub (local.get $n) (i32.const 4)))
//     (br 0))))
const step = (local: number, by: number) => [...op.get(local), ...op.i32(by), ...op.i32Add, ...op.set(local)];
const MODULE = buildModule([{
  name: 'add',
  params: [I32, I32, I32],
  body: [
    ...op.block, ...op.loop,
    ...op.get(2), ...op.i32Eqz, ...op.brIf(1),
    ...op.get(0), ...op.get(0), ...op.v128Load, ...op.get(1), ...op.v128Load, ...op.f32x4Add, ...op.v128Store,
    ...step(0, 16), ...step(1, 16), ...step(2, -4),
    ...op.br(0), ...op.end, ...op.end,
  ],
}], true);

let compiled: object | null | undefined;
/** The module, or null where this Node has no WASM SIMD (the JS loop is used then). */
function module(): object | null {
  if (compiled === undefined) compiled = compileModule(MODULE);
  return compiled;
}

/** Floats added per path since the process started (tests check which path an op took). */
export const addCounts = { inPlace: 0, copied: 0, js: 0 };

type Add = (dst: number, src: number, n: number) => void;
let shared: { arena: WasmArena; add: Add; scratch: Float32Array } | null | undefined;
/** The arena's add and the one scratch block (one thread, and an add never yields: one is enough). */
function simd(): { arena: WasmArena; add: Add; scratch: Float32Array } | null {
  if (shared === undefined) {
    const arena = processArena(), mod = module();
    shared = arena && mod ? { arena, add: instantiate(mod, arena.memory).add as Add, scratch: arena.floats(BLOCK) } : null;
  }
  return shared;
}

/** The process's arena, or null where the SIMD add cannot run (plain arrays and the JS loop then). */
export function simdArena(): WasmArena | null {
  return simd()?.arena ?? null;
}

/**
 * A float array of `length` in the arena when there is one (release it with releaseFloats), else a
 * plain one. Receive buffers, the exchange's staging and the callers' op buffers come from here.
 */
export function arenaFloats(length: number): Float32Array {
  return simd()?.arena.floats(length) ?? new Float32Array(length);
}

/** Gives back an array from arenaFloats (a plain one is left to the GC). */
export function releaseFloats(f: Float32Array): void {
  const s = simd();
  if (s && s.arena.owns(f)) s.arena.release(f);
}

/**
 * An op buffer of `length` floats (zeroed) in the allreduce's WebAssembly memory: an allreduce on
 * it adds received values in place, with no copy of each block into WASM memory and back (W = 4,
 * 64 MiB: bench/RESULTS.md session 7, "op buffer in WASM memory"). Any Float32Array works as an
 * op buffer; this one is only faster. It stays valid until releaseAllreduceBuffer (a plain array
 * where this Node has no shared WASM memory or no SIMD).
 */
export function allreduceBuffer(length: number): Float32Array {
  return arenaFloats(length);
}

/** Gives back a buffer from allreduceBuffer once no op uses it; throws for any other array, or a second release. */
export function releaseAllreduceBuffer(buf: Float32Array): void {
  const s = simd();
  if (s) s.arena.release(buf);
}

/** dst[at + i] += src[from + i], i < n: SIMD where src is in the arena, in place where dst is too. */
export function simdAddInto(dst: Float32Array, at: number, src: Float32Array, from: number, n: number): void {
  const s = simd();
  if (!s || !s.arena.owns(src)) { addCounts.js += n; return addInto(dst, at, src, from, n); }
  const { add, scratch } = s, base = src.byteOffset + from * 4;
  if (s.arena.owns(dst)) {
    addCounts.inPlace += n;
    const n4 = n & ~3;
    add(dst.byteOffset + at * 4, base, n4);
    for (let i = n4; i < n; i++) dst[at + i]! += src[from + i]!;
    return;
  }
  addCounts.copied += n;
  for (let done = 0; done < n;) {
    const k = Math.min(BLOCK, n - done), k4 = k & ~3;
    scratch.set(dst.subarray(at + done, at + done + k));
    add(scratch.byteOffset, base + done * 4, k4);
    for (let i = k4; i < k; i++) scratch[i]! += src[from + done + i]!;
    dst.set(scratch.subarray(0, k), at + done);
    done += k;
  }
}
