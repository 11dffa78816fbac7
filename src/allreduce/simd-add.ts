// dst += src with WebAssembly SIMD (f32x4.add), for the ring's reduce steps. V8 does not
// vectorise the JS loop: on this machine it adds 2M floats from a hot 1 MiB source in 4.8 ms
// where a memcpy of the same floats takes 0.43 ms (load ~14, 2026-12-02). WASM can only touch its
// own memory, so each SimdAdder owns one WebAssembly.Memory holding the data stream's receive
// buffer (the source, already there) and a scratch block: a block of dst is copied in (memcpy),
// added to with SIMD, and copied back, while it is in cache. The module is about 100 bytes,
// hand-encoded below with src/util/wasm-module.ts (no toolchain), compiled once per process.
import { buildModule, compileModule, I32, instantiate, newMemory, op } from '../util/wasm-module.ts';

/** Floats per block copied into WASM memory and back (64 KiB: stays in L2). */
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
}]);

let compiled: object | null | undefined;
/** The module, or null where this Node has no WASM SIMD (the JS loop is used then). */
function module(): object | null {
  if (compiled === undefined) compiled = compileModule(MODULE);
  return compiled;
}

export class SimdAdder {
  /** The receive buffer, inside WASM memory (the add's source). */
  readonly buffer: Uint8Array;
  private readonly add: ((dst: number, src: number, n: number) => void) | null;
  private readonly scratch: Float32Array;
  private readonly scratchAt: number;

  constructor(bufferBytes: number, private readonly jsAdd: (dst: Float32Array, at: number, src: Float32Array, from: number, n: number) => void) {
    const scratchBytes = BLOCK * 4;
    const mod = module();
    const memory = newMemory(bufferBytes + scratchBytes);
    this.buffer = new Uint8Array(memory.buffer, 0, bufferBytes);
    this.scratchAt = bufferBytes;
    this.scratch = new Float32Array(memory.buffer, bufferBytes, BLOCK);
    this.add = mod ? (instantiate(mod, memory).add as (d: number, s: number, n: number) => void) : null;
  }

  get simd(): boolean { return this.add !== null; }

  /** dst[at + i] += src[from + i], i < n; `src` a Float32Array view of `buffer` (from offset 0). */
  addInto(dst: Float32Array, at: number, src: Float32Array, from: number, n: number): void {
    const add = this.add;
    if (!add || src.buffer !== this.buffer.buffer) return this.jsAdd(dst, at, src, from, n);
    const base = src.byteOffset + from * 4;
    for (let done = 0; done < n;) {
      const k = Math.min(BLOCK, n - done), k4 = k & ~3;
      this.scratch.set(dst.subarray(at + done, at + done + k));
      add(this.scratchAt, base + done * 4, k4);
      for (let i = k4; i < k; i++) this.scratch[i]! += src[from + done + i]!;
      dst.set(this.scratch.subarray(0, k), at + done);
      done += k;
    }
  }
}
