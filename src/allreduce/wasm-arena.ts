// The allreduce's one WebAssembly memory per process, and the regions handed out of it: every
// data stream's receive buffer, the exchange's staging, and the op buffers callers ask for
// (allreduceBuffer). The SIMD add (simd-add.ts) can only touch its own memory, so when the op's
// buffer lives here too, received values are added in place, with no copy of the destination into
// WASM memory and back (that copy was ~7 of a rank's ~43 CPU ms per W = 4, 64 MiB op:
// bench/RESULTS.md, session 7).
//
// The memory is shared (a SharedArrayBuffer): growing it never detaches or moves the views already
// handed out (the 4 GiB address range is reserved up front), which a plain WASM memory would, so a
// region stays valid for as long as its owner holds it, whatever is allocated after. Nothing else
// runs on it: one thread, plain loads and stores.
import { newSharedMemory, PAGE_BYTES, type WasmMemory } from '../util/wasm-module.ts';

/** Regions start on 64-byte boundaries (a cache line; the SIMD add needs 16). */
const ALIGN = 64;
/** Grow by at least this much at a time (fewer grow() calls, each a new SharedArrayBuffer object). */
const GROW_MIN_BYTES = 16 << 20;

export class WasmArena {
  /** Every SharedArrayBuffer object the memory has had (one per size): a view on any of them is ours. */
  private readonly buffers: ArrayBufferLike[] = [];
  /** Free ranges [at, at + bytes) below `top`, by address, coalesced. */
  private readonly free: { at: number; bytes: number }[] = [];
  /** Bytes held per region start (release checks it). */
  private readonly held = new Map<number, number>();
  private top = 0;

  private constructor(readonly memory: WasmMemory) {
    this.buffers.push(memory.buffer);
  }

  /** The arena over a new shared memory, or null where this Node has none (callers use plain arrays then). */
  static create(): WasmArena | null {
    const memory = newSharedMemory(GROW_MIN_BYTES);
    return memory ? new WasmArena(memory) : null;
  }

  /** Bytes handed out and not released (tests check that rings give theirs back). */
  get bytesHeld(): number {
    let n = 0;
    for (const b of this.held.values()) n += b;
    return n;
  }

  /** Whether `view` lies in this memory (views made before a grow() name an older buffer object). */
  owns(view: ArrayBufferView): boolean {
    const b = view.buffer;
    for (let i = this.buffers.length - 1; i >= 0; i--) if (this.buffers[i] === b) return true;
    return false;
  }

  /** A region of `length` floats, zeroed. Throws when the 4 GiB memory has no room left. */
  floats(length: number): Float32Array {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`allreduce buffer length must be a non-negative integer, got ${length}`);
    const at = this.alloc(Math.max(ALIGN, Math.ceil((length * 4) / ALIGN) * ALIGN));
    const f = new Float32Array(this.memory.buffer, at, length);
    f.fill(0); // a released region keeps its last owner's values
    return f;
  }

  /** Gives a region from floats() back; it may be handed out again at once, so drop every view on it. */
  release(view: ArrayBufferView): void {
    const bytes = this.owns(view) ? this.held.get(view.byteOffset) : undefined;
    if (bytes === undefined) throw new Error('releaseAllreduceBuffer: not a buffer from allreduceBuffer(), or released already (release each buffer once, and only the array allreduceBuffer returned)');
    this.held.delete(view.byteOffset);
    this.giveBack(view.byteOffset, bytes);
  }

  private alloc(bytes: number): number {
    for (let i = 0; i < this.free.length; i++) { // first fit: the regions are few (a few per ring)
      const f = this.free[i]!;
      if (f.bytes < bytes) continue;
      const at = f.at;
      if (f.bytes === bytes) this.free.splice(i, 1);
      else { f.at += bytes; f.bytes -= bytes; }
      this.held.set(at, bytes);
      return at;
    }
    const at = this.top;
    const need = at + bytes - this.memory.buffer.byteLength;
    if (need > 0) {
      const pages = Math.ceil(Math.max(need, GROW_MIN_BYTES) / PAGE_BYTES);
      try { this.memory.grow(pages); } catch {
        throw new RangeError(`the allreduce's WebAssembly memory cannot grow to ${at + bytes} bytes (4 GiB at most per process, ${this.bytesHeld} held): allreduce smaller buffers, or release the ones no longer used`);
      }
      this.buffers.push(this.memory.buffer);
    }
    this.top = at + bytes;
    this.held.set(at, bytes);
    return at;
  }

  private giveBack(at: number, bytes: number): void {
    let i = 0;
    while (i < this.free.length && this.free[i]!.at < at) i++;
    this.free.splice(i, 0, { at, bytes });
    const next = this.free[i + 1];
    if (next && at + bytes === next.at) { this.free[i]!.bytes += next.bytes; this.free.splice(i + 1, 1); }
    const prev = this.free[i - 1];
    if (prev && prev.at + prev.bytes === at) { prev.bytes += this.free[i]!.bytes; this.free.splice(i, 1); i--; }
    const last = this.free[this.free.length - 1];
    if (last && last.at + last.bytes === this.top) { this.top = last.at; this.free.pop(); } // the memory itself never shrinks
  }
}

let arena: WasmArena | null | undefined;
/** The process's arena (made on first use), or null where shared WASM memory is not available. */
export function processArena(): WasmArena | null {
  if (arena === undefined) arena = WasmArena.create();
  return arena;
}
